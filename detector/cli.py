"""The ``auditwatch`` command: run, score, demo, check-config, alerts."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from detector import __version__
from detector.config import Settings, load_settings
from detector.errors import DetectorError
from detector.modeldefs import ModelSpec, load_models

log = logging.getLogger("auditwatch")
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args))
    except DetectorError as exc:
        print(f"auditwatch: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="auditwatch", description="Audit-log and ML-inference anomaly detection daemon."
    )
    parser.add_argument("--version", action="version", version=f"auditwatch {__version__}")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="consume Kafka, score every event, write alerts")
    run.add_argument(
        "--fresh-state",
        action="store_true",
        help="move a corrupt or foreign checkpoint aside and start that partition empty",
    )
    _common(run)
    run.set_defaults(handler=_cmd_run)

    score = sub.add_parser("score", help="score JSON-lines/CloudTrail files offline, in order")
    score.add_argument(
        "files", nargs="+", type=Path, help="JSON lines or CloudTrail files (.gz ok)"
    )
    score.add_argument("--scores", type=Path, required=True, help="one line per event: id, score")
    score.add_argument("--alerts", type=Path, required=True, help="alert documents, JSON lines")
    score.add_argument("--dead-letter", type=Path, help="rejected input (default from config)")
    score.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    _common(score)
    score.set_defaults(handler=_cmd_score)

    demo = sub.add_parser("demo", help="bundled broker + generated traffic with attacks")
    demo.add_argument("--duration", type=float, default=0, help="seconds to run (0: until Ctrl-C)")
    demo.add_argument("--rate", type=float, default=400.0, help="live events per second")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--out", type=Path, default=Path("demo-out"), help="alerts DB and logs")
    demo.add_argument("--metrics-port", type=int, default=9108)
    demo.set_defaults(handler=_cmd_demo)

    check = sub.add_parser("check-config", help="validate a config file and the model definitions")
    check.add_argument("file", type=Path)
    check.add_argument("--models", type=Path, help="model definitions folder (default: config)")
    check.set_defaults(handler=_cmd_check_config)

    status = sub.add_parser("status", help="health of a running daemon (its /healthz)")
    status.add_argument("--url", default="http://127.0.0.1:9108", help="its metrics address")
    status.set_defaults(handler=_cmd_status)

    alerts = sub.add_parser("alerts", help="show the latest alerts from the SQLite store")
    alerts.add_argument("--db", type=Path, default=Path("auditwatch-alerts.db"))
    alerts.add_argument("--limit", type=int, default=20)
    alerts.set_defaults(handler=_cmd_alerts)
    return parser


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML settings (env AUDITWATCH_* override)")
    p.add_argument("--models", type=Path, help="model definitions folder (overrides config)")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR (overrides config)")


def _setup(args: argparse.Namespace) -> tuple[Settings, list[ModelSpec]]:
    settings = load_settings(args.config)
    level = getattr(args, "log_level", None) or settings.log_level
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    specs = load_models(args.models or settings.models_dir)
    log.info("models: %s", ", ".join(f"{s.name} v{s.version}" for s in specs))
    return settings, specs


def _cmd_check_config(args: argparse.Namespace) -> int:
    settings = load_settings(args.file)
    specs = load_models(args.models or settings.models_dir)
    import json

    print(json.dumps(settings.redacted_dump(), indent=2, default=str))
    for spec in specs:
        print(
            f"model {spec.name} v{spec.version}: {spec.kind}, topics {spec.topics},"
            f" {len(spec.feature_names)} features, {spec.detector.algorithm},"
            f" budget {spec.alerts.budget_per_10k}/10k"
        )
    print("configuration OK")
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from detector.runtime import run_daemon

    settings, specs = _setup(args)
    if args.fresh_state:
        state = settings.state.model_copy(update={"on_invalid": "fresh"})
        settings = settings.model_copy(update={"state": state})
    stop = threading.Event()
    _install_signal_handlers(stop)
    return run_daemon(settings, specs, stop)


def _cmd_status(args: argparse.Namespace) -> int:
    """Print the daemon's health report; 0 when ok, 1 when degraded, stalled or unreachable."""
    import json
    import urllib.error
    import urllib.request

    url = args.url.rstrip("/") + "/healthz"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            report = json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # 503 carries the report too
        report = json.loads(exc.read() or b"{}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"auditwatch: no daemon answering at {url}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(json.dumps(report, indent=2))
    return EXIT_OK if report.get("status") == "ok" else EXIT_ERROR


def _cmd_score(args: argparse.Namespace) -> int:
    from detector.offline import score_files

    settings, specs = _setup(args)
    dead_letter = args.dead_letter or settings.files.dead_letter_jsonl
    summary = score_files(
        settings,
        specs,
        args.files,
        args.scores,
        args.alerts,
        dead_letter,
        progress=not args.no_progress,
    )
    print(summary.describe(), file=sys.stderr)
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from detector.demo import run_demo

    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    stop = threading.Event()
    _install_signal_handlers(stop)
    return run_demo(args.out, args.duration, args.rate, args.seed, args.metrics_port, stop)


def _cmd_alerts(args: argparse.Namespace) -> int:
    from detector.sinks.sqlite import SqliteSink

    if not args.db.exists():
        print(f"auditwatch: {args.db}: no alert store here", file=sys.stderr)
        return EXIT_ERROR
    for doc in SqliteSink.read_alerts(args.db, args.limit):
        print(
            f"{doc['@timestamp']}  sev {doc['event']['risk_score']:5.1f}  "
            f"{doc['rule']['name']}  {doc['message']}"
        )
    return EXIT_OK


def _install_signal_handlers(stop: threading.Event) -> None:
    def handle(signum: int, _frame: object) -> None:
        log.info("signal %s: finishing the batch in hand, then stopping", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
