"""Alert sink writing to Elasticsearch (or an OpenSearch-compatible server).

Documents go to daily indices ``{prefix}-YYYY.MM.DD`` named from the alert's
``@timestamp`` (the source event time, so a replay lands in the same index),
with ``_id`` = ``event.id`` and op_type ``index``: re-delivery overwrites, never
duplicates. The composable index template ``detector/assets/index-template.json``
is installed for ``{prefix}-*`` before the first write.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from elastic_transport import (
    ConnectionError,
    ConnectionTimeout,
    HttpHeaders,
    SerializationError,
    TlsError,
    TransportError,
    Urllib3HttpNode,
)
from elastic_transport.client_utils import DEFAULT, DefaultType
from elasticsearch import ApiError, Elasticsearch
from pydantic import SecretStr

from detector.errors import BackpressureError, SinkError
from detector.sinks.base import AlertDoc, alert_id, backoff_seconds, daily_index

if TYPE_CHECKING:  # exported by elastic_transport._node only
    from elastic_transport._node import NodeApiResponse

TEMPLATE_ASSET = "assets/index-template.json"
MAX_REASONS = 3  # error reasons quoted in a SinkError message
# Alerts per bulk request (~2 KB each, so about 2 MB, within Elastic's 5-15 MB advice). A
# transient failure halves it and each written bulk doubles it back: a backlog never
# becomes one request too big to finish within request_timeout, retried forever.
MAX_BULK_DOCS = 1_000

_VENDOR_MEDIA_TYPE = re.compile(
    r"application/vnd\.elasticsearch\+([\w.-]+)(\s*;\s*compatible-with=\d+)?", re.IGNORECASE
)


class PlainJsonHttpNode(Urllib3HttpNode):
    """Sends ``application/json`` instead of elasticsearch-py's vendor media type.

    elasticsearch-py 9 sends ``application/vnd.elasticsearch+json;
    compatible-with=9`` (and ``+x-ndjson`` for bulk), which OpenSearch and
    OpenSearch-compatible servers reject with HTTP 406. Rewriting at the node
    keeps every client API and its serialisation unchanged.
    """

    def perform_request(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: HttpHeaders | None = None,
        request_timeout: DefaultType | float | None = DEFAULT,
    ) -> NodeApiResponse:
        if headers:
            headers = headers.copy()
            for name in ("content-type", "accept"):
                value = headers.get(name)
                if value:
                    headers[name] = _VENDOR_MEDIA_TYPE.sub(r"application/\1", value)
        return super().perform_request(
            method, target, body=body, headers=headers, request_timeout=request_timeout
        )


def load_template(prefix: str) -> dict[str, Any]:
    """The packaged index template, with its pattern set to ``{prefix}-*``."""
    text = resources.files("detector").joinpath(TEMPLATE_ASSET).read_text(encoding="utf-8")
    template: dict[str, Any] = json.loads(text)
    template["index_patterns"] = [f"{prefix}-*"]
    return template


def _reveal(secret: SecretStr | str | None) -> str | None:
    return secret.get_secret_value() if isinstance(secret, SecretStr) else secret


class ElasticsearchSink:
    """Bulk-indexes alert documents; see the module docstring for ids and indices.

    ``compat_plain_json=True`` is for OpenSearch-compatible servers (see
    ``PlainJsonHttpNode``). ``password`` and ``api_key`` are never logged or
    shown in ``repr``. Not thread-safe: one pipeline thread owns a sink.
    """

    name = "elasticsearch"

    def __init__(
        self,
        hosts: Sequence[str] | str,
        index_prefix: str = "auditwatch-alerts",
        username: str | None = None,
        password: SecretStr | str | None = None,
        api_key: SecretStr | str | None = None,
        ca_certs: str | Path | None = None,
        verify_certs: bool = True,
        compat_plain_json: bool = False,
        request_timeout: float = 10.0,
    ) -> None:
        self.hosts = [hosts] if isinstance(hosts, str) else list(hosts)
        self.index_prefix = index_prefix
        options: dict[str, Any] = {
            "request_timeout": request_timeout,
            "max_retries": 1,  # longer waits are the pipeline's job, via BackpressureError
            "retry_on_timeout": False,
            "verify_certs": verify_certs,
        }
        if ca_certs is not None:
            options["ca_certs"] = str(ca_certs)
        if username is not None:
            options["basic_auth"] = (username, _reveal(password) or "")
        if api_key is not None:
            options["api_key"] = _reveal(api_key)
        if compat_plain_json:
            options["node_class"] = PlainJsonHttpNode
        self.client = Elasticsearch(self.hosts, **options)
        self._buffer: dict[str, bytes] = {}  # id -> NDJSON action + doc lines; last wins
        self._template_installed = False
        self._failures = 0
        self.bulk_docs = MAX_BULK_DOCS  # the next bulk's size (adapts, see MAX_BULK_DOCS)

    def __repr__(self) -> str:
        return f"ElasticsearchSink(hosts={self.hosts!r}, index_prefix={self.index_prefix!r})"

    def ensure_template(self) -> None:
        """Install (or update) the composable template ``{prefix}`` for ``{prefix}-*``."""
        body = load_template(self.index_prefix)
        meta = body.pop("_meta", None)
        try:
            self.client.indices.put_index_template(name=self.index_prefix, meta=meta, **body)
        except (ApiError, TransportError, SerializationError) as exc:
            raise self._classify(exc, "installing the index template") from exc
        self._template_installed = True

    def add(self, alerts: Sequence[AlertDoc]) -> None:
        """Buffer alerts, serialised now with orjson (NaN -> null, numpy scalars allowed)."""
        for doc in alerts:
            doc_id = alert_id(doc)
            action = {"index": {"_index": daily_index(self.index_prefix, doc), "_id": doc_id}}
            self._buffer[doc_id] = orjson.dumps(action) + b"\n" + _dumps(doc) + b"\n"

    def flush(self) -> None:
        """Write the buffer, oldest first, in bulks of ``bulk_docs``; what was written
        before a failure stays written (and leaves the buffer)."""
        while self._buffer:
            if not self._template_installed:
                self.ensure_template()
            try:
                self._bulk(list(islice(self._buffer, self.bulk_docs)))
            except BackpressureError:  # the request, or items in it (429, 5xx)
                self.bulk_docs = max(1, self.bulk_docs // 2)
                raise
            self.bulk_docs = min(MAX_BULK_DOCS, 2 * self.bulk_docs)

    def _bulk(self, ids: list[str]) -> None:
        try:
            # Pre-encoded NDJSON passes through the client's serializer unchanged (as in
            # elasticsearch.helpers); the type hint only lists the dict form.
            body = b"".join(self._buffer[doc_id] for doc_id in ids)
            response = self.client.bulk(operations=body)  # type: ignore[arg-type]
        except (ApiError, TransportError, SerializationError) as exc:
            raise self._classify(exc, f"bulk request ({len(ids)} alerts)") from exc
        self._settle(ids, response.body.get("items", []))

    def _settle(self, ids: list[str], items: list[dict[str, Any]]) -> None:
        """Drop the written ids from the buffer; raise for any that failed."""
        if len(items) != len(ids):
            self._failures += 1
            raise SinkError(f"bulk response has {len(items)} items for {len(ids)} documents")
        failed: list[tuple[int, str]] = []
        for doc_id, item in zip(ids, items, strict=True):
            result = item.get("index", {})
            status = int(result.get("status", 0))
            if 200 <= status < 300:
                del self._buffer[doc_id]
            else:
                failed.append((status, f"{doc_id}: {status} {_reason(result)}"))
        if not failed:
            self._failures = 0
            return
        self._failures += 1
        message = f"{len(failed)} of {len(ids)} alerts not indexed: " + "; ".join(
            reason for _, reason in failed[:MAX_REASONS]
        )
        if any(_transient(status) for status, _ in failed):
            raise BackpressureError(message, retry_after=backoff_seconds(self._failures))
        raise SinkError(message)

    def _classify(self, exc: Exception, what: str) -> SinkError:
        """Transient failures (429, 5xx, connection) become BackpressureError."""
        self._failures += 1
        retry_after = backoff_seconds(self._failures)
        if isinstance(exc, ApiError):
            status = exc.meta.status
            message = f"elasticsearch {what} failed: {status} {exc.message}"
            if _transient(status):
                header = exc.meta.headers.get("retry-after") or ""
                retry_after = float(header) if header.isdigit() else retry_after
                return BackpressureError(message, retry_after=retry_after)
            return SinkError(message)
        message = f"elasticsearch {what} failed: {type(exc).__name__}: {exc}"
        if isinstance(exc, ConnectionError | ConnectionTimeout) and not isinstance(exc, TlsError):
            return BackpressureError(message, retry_after=retry_after)
        return SinkError(message)

    def close(self) -> None:
        self.client.close()


def _dumps(doc: AlertDoc) -> bytes:
    try:
        return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError as exc:
        raise SinkError(f"alert {alert_id(doc)} is not JSON-serialisable: {exc}") from exc


def _transient(status: int) -> bool:
    return status == 429 or status >= 500


def _reason(result: Mapping[str, Any]) -> str:
    error = result.get("error")
    if isinstance(error, Mapping):
        return f"{error.get('type', '')}: {error.get('reason', '')}"
    return str(error)
