"""Record builders for access traffic: CloudTrail records and ECS JSON events.

Builders are pure: every random value (ids, address, agent, amounts) is drawn
by the caller and passed in, so the same inputs give the same record. Key order
follows real CloudTrail records (see tests/test_synth.py for the comparison).
"""

from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np

from detector.synth import catalog as cat
from detector.synth.catalog import ActionSpec
from detector.synth.population import Entity

_TLS = {
    "tlsVersion": "TLSv1.3",
    "cipherSuite": "TLS_AES_128_GCM_SHA256",
}
_S3_EXTRA = {"SignatureVersion": "SigV4", "CipherSuite": "TLS_AES_128_GCM_SHA256"}
_LOGIN_EXTRA = {
    "LoginTo": "https://console.aws.amazon.com/console/home",
    "MobileVersion": "No",
    "MFAUsed": "Yes",
}


_MMSS = [f"{m:02d}:{sec:02d}" for m in range(60) for sec in range(60)]
_MILLIS = [f".{ms:03d}Z" for ms in range(1000)]


@functools.lru_cache(maxsize=1024)
def _hour_prefix(hour: int) -> str:
    return time.strftime("%Y-%m-%dT%H:", time.gmtime(hour * 3600))


def iso_seconds(ts: float) -> str:
    """CloudTrail eventTime: whole seconds, UTC, ``Z`` suffix.

    >>> iso_seconds(1793577600.9)
    '2026-11-02T00:00:00Z'
    """
    sec = int(ts)
    return _hour_prefix(sec // 3600) + _MMSS[sec % 3600] + "Z"


def iso_millis(ts: float) -> str:
    """ECS @timestamp with milliseconds.

    >>> iso_millis(1793577600.25)
    '2026-11-02T00:00:00.250Z'
    """
    sec, ms = divmod(round(ts * 1000), 1000)
    return _hour_prefix(sec // 3600) + _MMSS[sec % 3600] + _MILLIS[ms]


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def uuid_block(raw: np.ndarray) -> list[str]:
    """Version-4 UUID strings from an (n, 16) uint8 array of seeded random bytes.

    Vectorised because ids are a large share of generation time.
    """
    raw = raw.copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    nib = np.empty((len(raw), 32), dtype=np.uint8)
    nib[:, 0::2] = raw >> 4
    nib[:, 1::2] = raw & 0x0F
    chars = np.full((len(raw), 36), ord("-"), dtype=np.uint8)
    for lo, hi, off in ((0, 8, 0), (8, 12, 1), (12, 16, 2), (16, 20, 3), (20, 32, 4)):
        chars[:, lo + off : hi + off] = _HEX[nib[:, lo:hi]]
    text = chars.tobytes().decode("ascii")
    return [text[i : i + 36] for i in range(0, len(text), 36)]


def uuid_str(value: int) -> str:
    """A version-4 UUID string from a 128-bit int (drawn from a seeded RNG)."""
    raw = np.frombuffer(value.to_bytes(16, "big"), dtype=np.uint8)[None, :]
    return uuid_block(raw)[0]


def _kind_fields(
    ent: Entity, spec: ActionSpec, resource: str, amount: int, amount2: int
) -> tuple[Any, Any, dict[str, Any] | None, list[dict[str, str]] | None]:
    """(requestParameters, responseElements, additionalEventData, resources) per kind."""
    kind = spec.kind
    if kind == "s3_object" or kind == "s3_bucket":
        bucket, _, key = resource.partition("/")
        params: dict[str, Any] = {
            "bucketName": bucket,
            "Host": f"{bucket}.s3.{ent.region}.amazonaws.com",
        }
        res = [
            {
                "accountId": cat.ACCOUNT_ID,
                "type": "AWS::S3::Bucket",
                "ARN": f"arn:aws:s3:::{bucket}",
            }
        ]
        if key:
            params["key"] = key
            res.insert(0, {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"})
        else:
            params["list-type"] = "2"
        written = spec.name == "PutObject"
        extra = {
            **_S3_EXTRA,
            "bytesTransferredIn": amount if written else 0,
            "AuthenticationMethod": "AuthHeader",
            "bytesTransferredOut": 0 if written else amount,
        }
        return params, None, extra, res
    if kind == "bedrock":
        arn = f"arn:aws:bedrock:{ent.region}::foundation-model/{resource}"
        extra = {"inputTokens": amount, "outputTokens": amount2}
        return {"modelId": resource}, None, extra, [{"ARN": arn, "type": "AWS::Bedrock::Model"}]
    if kind == "console_login":
        return None, {"ConsoleLogin": "Success"}, dict(_LOGIN_EXTRA), None
    return cat.API_PARAMS.get(spec.name), None, None, None


def cloudtrail_record(
    ent: Entity,
    spec: ActionSpec,
    ts: float,
    ids: tuple[str, str],
    ip: str,
    agent: str,
    *,
    resource: str = "",
    amount: int = 0,
    amount2: int = 0,
    failed: bool = False,
    params: dict[str, Any] | None = None,
    response: Any = None,
) -> dict[str, Any]:
    """One CloudTrail record (dict) for ``ent`` doing ``spec`` at ``ts``.

    ``ids`` is (eventID, requestID). ``amount`` is bytes for S3 and input tokens for
    Bedrock (``amount2`` output tokens). ``params``/``response`` override the
    request parameters / response elements (used by attack scenarios).
    """
    req, resp, extra, res = _kind_fields(ent, spec, resource, amount, amount2)
    login = spec.kind == "console_login"
    rec: dict[str, Any] = {
        "eventVersion": "1.09" if login else "1.10",
        "userIdentity": ent.identity,
        "eventTime": iso_seconds(ts),
        "eventSource": spec.source,
        "eventName": spec.name,
        "awsRegion": "us-east-1" if login else ent.region,
        "sourceIPAddress": ip,
        "userAgent": agent,
    }
    if failed:
        resp = _fail(rec, ent, spec, resp)
    rec["requestParameters"] = params if params is not None else req
    rec["responseElements"] = response if response is not None else resp
    if extra is not None:
        rec["additionalEventData"] = extra
    if not login:  # real sign-in records carry no requestID
        rec["requestID"] = ids[1]
    rec["eventID"] = ids[0]
    _finish(rec, ent, spec, res)
    return rec


def _finish(rec: dict[str, Any], ent: Entity, spec: ActionSpec, res: list[Any] | None) -> None:
    """The trailing CloudTrail fields, in the order real records have them."""
    login = spec.kind == "console_login"
    rec["readOnly"] = spec.read_only
    if res is not None:
        rec["resources"] = res
    data = spec.kind in ("s3_object", "s3_bucket")
    rec["eventType"] = "AwsConsoleSignIn" if login else "AwsApiCall"
    rec["managementEvent"] = not data
    rec["recipientAccountId"] = cat.ACCOUNT_ID
    rec["eventCategory"] = "Data" if data else "Management"
    rec["tlsDetails"] = _tls(spec.source, ent.region, login)


@functools.lru_cache(maxsize=4096)
def _tls(source: str, region: str, login: bool) -> dict[str, str]:
    """Shared (never mutated) tlsDetails object per endpoint."""
    service = source.removesuffix(".amazonaws.com")
    host = "signin.aws.amazon.com" if login else f"{service}.{region}.amazonaws.com"
    return {**_TLS, "clientProvidedHostHeader": host}


def _fail(rec: dict[str, Any], ent: Entity, spec: ActionSpec, resp: Any) -> Any:
    """Add the error fields; returns the (possibly replaced) responseElements."""
    if spec.kind == "console_login":  # real failed sign-ins: errorMessage, no errorCode
        rec["errorMessage"] = "Failed authentication"
        return {"ConsoleLogin": "Failure"}
    action = spec.source.split(".", 1)[0] + ":" + spec.name
    rec["errorCode"] = "AccessDenied"
    rec["errorMessage"] = (
        f"User: {ent.identity.get('arn', ent.key)} is not authorized to perform: {action}"
    )
    return resp


def ecs_record(
    ent: Entity,
    spec: ActionSpec,
    ts: float,
    event_id: str,
    ip: str,
    country: str,
    agent: str,
    *,
    resource: str = "",
    amount: int = 0,
    rows: int = 0,
    failed: bool = False,
) -> dict[str, Any]:
    """One nested ECS event as Beats / Elastic Agent ship it.

    database: ``url.path`` = "/db/<schema>/<table>" (the resource), ``destination.bytes``
    and ``db.response.returned_rows``; web: ``url.path`` + ``http.response.body.bytes``;
    file: ``file.path`` + ``destination.bytes``; authentication: no resource.
    """
    kind = spec.kind
    rec: dict[str, Any] = {
        "@timestamp": iso_millis(ts),
        "event": {
            "id": event_id,
            "kind": "event",
            "category": [kind],
            "action": spec.name,
            "outcome": "failure" if failed else "success",
            "dataset": f"{kind}.audit",
        },
        "user": {"name": ent.key, "id": ent.user_id},
        "source": {"ip": ip, "geo": {"country_iso_code": country}},
        "user_agent": {"original": agent},
    }
    rec.update(_ecs_kind(kind, resource, amount, rows, failed))
    return rec


def _ecs_kind(kind: str, resource: str, amount: int, rows: int, failed: bool) -> dict[str, Any]:
    """The category-specific ECS fields (service, resource, bytes, rows)."""
    if kind == "database":
        return {
            "service": {"name": "postgres-" + resource.split("/", 1)[0]},
            "url": {"path": f"/db/{resource}"},
            "destination": {"address": "pg.internal", "bytes": 0 if failed else amount},
            "db": {"response": {"returned_rows": 0 if failed else rows}},
        }
    if kind == "web":
        response = {"status_code": 403 if failed else 200, "body": {"bytes": amount}}
        return {
            "service": {"name": "intranet"},
            "url": {"path": resource},
            "http": {"request": {"method": "GET"}, "response": response},
        }
    if kind == "file":
        return {
            "service": {"name": "fileserver"},
            "file": {"path": resource},
            "destination": {"bytes": amount},
        }
    return {"service": {"name": "okta"}}
