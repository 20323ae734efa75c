"""Session fixtures starting real servers (see ``servers.py``); nothing runs by hand.

- ``kafka_broker``: Tansu broker; ``.bootstrap``, ``.create_topic()``, ``.pause()``/``.resume()``.
  Use ``unique_name("topic")`` / ``unique_name("group")`` per test, and
  ``session_timeout_ms=6000, heartbeat_interval_ms=1000`` for consumers: the broker
  holds each group join for about half the session timeout.
- ``search_server``: osmem-server; ``.url``. Use a unique index prefix per test.
- ``prometheus_server``: factory ``prometheus_server(["127.0.0.1:PORT"])`` -> handle with
  ``.query()`` / ``.wait_for()``; each call starts its own Prometheus, stopped after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from servers import (
    KafkaBroker,
    PrometheusServer,
    SearchServer,
    start_kafka_broker,
    start_prometheus,
    start_search_server,
    unique_name,
)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    broker = start_kafka_broker(tmp_path_factory.mktemp("kafka"))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def search_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SearchServer]:
    server = start_search_server(tmp_path_factory.mktemp("search"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def prometheus_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[list[str]], PrometheusServer]]:
    started: list[PrometheusServer] = []

    def start(targets: list[str]) -> PrometheusServer:
        server = start_prometheus(targets, tmp_path_factory.mktemp("prometheus"))
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture(name="unique_name")
def unique_name_fixture() -> Callable[[str], str]:
    """``unique_name("topic")`` -> ``"topic-<12 hex>"``, for per-test names."""
    return unique_name
