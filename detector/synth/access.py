"""Record builders for access traffic: CloudTrail records and ECS JSON events.

Builders are pure: every random value (ids, address, agent, amounts) is drawn
by the caller and passed in, so the same inputs give the same record. Key order
follows real CloudTrail records (see tests/test_synth.py for the comparison).
"""

from __future__ import annotations

import time
from typing import Any

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


def iso_seconds(ts: float) -> str:
    """CloudTrail eventTime: whole seconds, UTC, ``Z`` suffix.

    >>> iso_seconds(1793577600.9)
    '2026-11-02T00:00:00Z'
    """
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ts)))


def iso_millis(ts: float) -> str:
    """ECS @timestamp with milliseconds.

    >>> iso_millis(1793577600.25)
    '2026-11-02T00:00:00.250Z'
    """
    sec, ms = divmod(round(ts * 1000), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{ms:03d}Z"


def uuid_str(hi: int, lo: int) -> str:
    """A version-4 UUID string from two 64-bit ints (drawn from a seeded RNG)."""
    hi = (hi & ~0xF000) | 0x4000
    lo = (lo & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
    h = f"{hi:016x}{lo:016x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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
        res = [{"accountId": cat.ACCOUNT_ID, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}]
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
    if failed and login:  # real failed sign-ins carry errorMessage but no errorCode
        rec["errorMessage"] = "Failed authentication"
        resp = {"ConsoleLogin": "Failure"}
    elif failed:
        rec["errorCode"] = "AccessDenied"
        rec["errorMessage"] = _denied(ent, spec)
    rec["requestParameters"] = params if params is not None else req
    rec["responseElements"] = response if response is not None else resp
    if extra is not None:
        rec["additionalEventData"] = extra
    rec["requestID"] = ids[1]
    rec["eventID"] = ids[0]
    rec["readOnly"] = spec.read_only
    if res is not None:
        rec["resources"] = res
    data = spec.kind in ("s3_object", "s3_bucket") and spec.name != "GetBucketAcl"
    rec["eventType"] = "AwsConsoleSignIn" if login else "AwsApiCall"
    rec["managementEvent"] = not data
    rec["recipientAccountId"] = cat.ACCOUNT_ID
    rec["eventCategory"] = "Data" if data else "Management"
    rec["tlsDetails"] = {**_TLS, "clientProvidedHostHeader": _host(spec, ent)}
    return rec


def _denied(ent: Entity, spec: ActionSpec) -> str:
    action = spec.source.split(".", 1)[0] + ":" + spec.name
    return f"User: {ent.identity.get('arn', ent.key)} is not authorized to perform: {action}"


def _host(spec: ActionSpec, ent: Entity) -> str:
    if spec.kind == "console_login":
        return "signin.aws.amazon.com"
    return spec.source.replace(".amazonaws.com", f".{ent.region}.amazonaws.com")


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
    if kind == "database":
        rec["service"] = {"name": "postgres-" + resource.split("/", 1)[0]}
        rec["url"] = {"path": f"/db/{resource}"}
        rec["destination"] = {"address": "pg.internal", "bytes": 0 if failed else amount}
        rec["db"] = {"response": {"returned_rows": 0 if failed else rows}}
    elif kind == "web":
        status = 403 if failed else 200
        rec["service"] = {"name": "intranet"}
        rec["url"] = {"path": resource}
        rec["http"] = {"request": {"method": "GET"}, "response": {"status_code": status, "body": {"bytes": amount}}}
    elif kind == "file":
        rec["service"] = {"name": "fileserver"}
        rec["file"] = {"path": resource}
        rec["destination"] = {"bytes": amount}
    else:
        rec["service"] = {"name": "okta"}
    return rec
