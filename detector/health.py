"""Health of the running daemon, served as ``/healthz`` beside ``/metrics``.

``ok``: the loop is turning, every sink accepted its last write, consumption runs.
``degraded``: a sink is failing or consumption is paused for backpressure; the
daemon is doing the right thing (queuing, retrying) and needs no restart, so
the HTTP status stays 200. ``stalled``: the loop has not turned for
``stall_after_s`` (HTTP 503): a liveness probe should restart the process.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class Health:
    def __init__(self, stall_after_s: float = 120.0, clock: Callable[[], float] = time.time):
        self.stall_after_s = stall_after_s
        self.clock = clock
        self.started = clock()
        self.last_beat = self.started
        self.last_commit: float | None = None
        self.paused = False
        self.sinks: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def beat(self) -> None:
        self.last_beat = self.clock()

    def committed(self) -> None:
        self.last_commit = self.clock()

    def sink(self, name: str, up: bool, error: str | None = None) -> None:
        with self._lock:
            entry = self.sinks.setdefault(name, {"up": True, "since": self.clock()})
            if entry["up"] != up:
                entry["since"] = self.clock()
            entry.update(up=up, error=None if up else (error or "")[:300])

    def report(self) -> dict[str, Any]:
        now = self.clock()
        with self._lock:
            sinks = {k: dict(v) for k, v in self.sinks.items()}
        if now - self.last_beat > self.stall_after_s:
            status = "stalled"
        elif self.paused or not all(s["up"] for s in sinks.values()):
            status = "degraded"
        else:
            status = "ok"
        return {
            "status": status,
            "uptime_s": round(now - self.started, 1),
            "loop_age_s": round(now - self.last_beat, 1),
            "last_commit_age_s": None
            if self.last_commit is None
            else round(now - self.last_commit, 1),
            "backpressure": self.paused,
            "sinks": sinks,
        }


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would flood the log."""


def serve(registry: CollectorRegistry, health: Health, host: str, port: int) -> int:
    """Serve ``/metrics`` and ``/healthz`` in a background thread; returns the bound port."""
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            report = health.report()
            code = "503 Service Unavailable" if report["status"] == "stalled" else "200 OK"
            start_response(code, [("Content-Type", "application/json")])
            return [json.dumps(report).encode()]
        return metrics_app(environ, start_response)

    server = make_server(host, port, app, server_class=_Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return int(server.server_address[1])
