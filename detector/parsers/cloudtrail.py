"""AWS CloudTrail records -> Event.

Accepts records as delivered to S3 (inside ``{"Records": [...]}``), one per
message (EventBridge/Kinesis/Firehose), or Logstash-shipped (``@timestamp``
instead of ``eventTime``). docs/input-formats.md has the full field mapping.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from detector.events import Event
from detector.parsers.common import content_id, network_of, opt_num, opt_str, reject, to_epoch

BEDROCK_INVOKE = frozenset(
    {"InvokeModel", "InvokeModelWithResponseStream", "Converse", "ConverseStream"}
)
# requestParameters keys that name the target when a record has no resources[]
RESOURCE_PARAMS = (
    "roleArn",
    "secretId",
    "policyArn",
    "functionName",
    "roleName",
    "userName",
    "groupName",
    "trailName",
    "name",
    "keyId",
    "logGroupName",
    "tableName",
    "dBInstanceIdentifier",
    "instanceId",
    "snapshotId",
    "imageId",
    "modelId",
)
_RESOURCE_PARAM_SET = frozenset(RESOURCE_PARAMS)


def is_cloudtrail(record: dict[str, Any]) -> bool:
    """A CloudTrail record names its API call with eventSource + eventName."""
    return "eventName" in record and "eventSource" in record


def _dict(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if type(value) is not dict:
        raise reject("bad_type", f"{name}: expected object, got {type(value).__name__}")
    return value


def _role_arn(ident: dict[str, Any]) -> str | None:
    """The IAM role behind an assumed-role session (stable across sessions)."""
    context = _dict(ident.get("sessionContext"), "sessionContext")
    issuer = _dict(context.get("sessionIssuer"), "sessionContext.sessionIssuer")
    arn = opt_str(issuer.get("arn"), "sessionIssuer.arn")
    if arn:
        return arn
    # arn:aws:sts::ACCT:assumed-role/ROLE/SESSION -> arn:aws:iam::ACCT:role/ROLE
    session_arn = opt_str(ident.get("arn"), "userIdentity.arn") or ""
    head, _, path = session_arn.partition(":assumed-role/")
    if path:
        return head.replace(":sts:", ":iam:", 1) + ":role/" + path.split("/", 1)[0]
    return None


def principal(ident: dict[str, Any]) -> tuple[str, str, str, str | None, str | None]:
    """(entity, entity_type, peer_group, user_name, user_id) from ``userIdentity``.

    The order is Event's positional order after ``source_format``.
    """
    kind = ident.get("type")
    user_name = opt_str(ident.get("userName"), "userIdentity.userName")
    user_id = opt_str(ident.get("principalId"), "userIdentity.principalId")
    arn = opt_str(ident.get("arn"), "userIdentity.arn")
    invoked_by = opt_str(ident.get("invokedBy"), "userIdentity.invokedBy")
    if kind == "AssumedRole":
        session = arn.rsplit("/", 1)[-1] if arn else None
        entity, etype, user_name = _role_arn(ident) or arn, "role", session
    elif kind == "Root":
        entity, etype, user_name = "root", "root", user_name or "root"
    elif kind == "AWSService" or (kind is None and invoked_by):
        entity, etype = invoked_by, "service"
    elif kind == "AWSAccount":
        account = opt_str(ident.get("accountId"), "userIdentity.accountId")
        entity, etype = (f"account:{account}" if account else user_id), "unknown"
    elif kind == "IAMUser":
        entity, etype = user_name or arn or user_id, "user"
    else:  # FederatedUser, SAMLUser, WebIdentityUser, IdentityCenterUser, Unknown
        entity, etype = arn or user_name or user_id, "user" if kind else "unknown"
    if not entity:
        raise reject("missing_field", f"userIdentity ({kind}): no principal name, arn or id")
    return entity, etype, etype, user_name, user_id


def resource_of(record: dict[str, Any], params: dict[str, Any]) -> str | None:
    """resources[0].ARN, else an S3 object/bucket ARN or a known requestParameters key."""
    resources = record.get("resources")
    if type(resources) is list and resources and type(resources[0]) is dict:
        arn = opt_str(resources[0].get("ARN"), "resources[0].ARN")
        if arn:
            return arn
    if not params:
        return None
    bucket = params.get("bucketName")
    if type(bucket) is str and bucket:
        key = params.get("key")
        return f"arn:aws:s3:::{bucket}/{key}" if type(key) is str else f"arn:aws:s3:::{bucket}"
    named = _RESOURCE_PARAM_SET.intersection(params)  # one C-level pass, not 17 lookups
    for name in RESOURCE_PARAMS if named else ():
        value = params.get(name)
        if type(value) is str and value:
            return value
    return None


def outcome_of(record: dict[str, Any], event_name: str) -> str:
    if record.get("errorCode"):
        return "failure"
    if event_name == "ConsoleLogin":
        response = record.get("responseElements")
        if type(response) is dict and response.get("ConsoleLogin") == "Failure":
            return "failure"
    return "success"


def add_bedrock(
    event: Event, event_source: str, event_name: str, params: dict[str, Any], extra: dict[str, Any]
) -> None:
    """Set model and token counts of a Bedrock invocation (other calls: unchanged).

    Token counts are only read from additionalEventData.inputTokens/outputTokens;
    CloudTrail omits them for many calls, and then they stay NaN.
    """
    if event_name not in BEDROCK_INVOKE or not event_source.startswith("bedrock"):
        return
    event.model = opt_str(params.get("modelId"), "requestParameters.modelId")
    event.input_tokens = opt_num(extra.get("inputTokens"), "additionalEventData.inputTokens")
    event.output_tokens = opt_num(extra.get("outputTokens"), "additionalEventData.outputTokens")


def _action(event_source: str, event_name: str) -> str:
    return event_source.split(".", 1)[0] + ":" + event_name


_action_cached = lru_cache(maxsize=4096)(_action)  # few distinct calls, many records


def _checked_parts(get: Any) -> tuple[str, str, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """eventSource, eventName, userIdentity, requestParameters, additionalEventData."""
    event_source = get("eventSource")
    event_name = get("eventName")
    if type(event_name) is not str or type(event_source) is not str:
        raise reject("bad_type", "eventSource and eventName must be strings")
    if not event_name or not event_source:
        raise reject("missing_field", "eventSource and eventName must not be empty")
    ident = get("userIdentity")
    if type(ident) is not dict:
        raise reject(
            "missing_field" if ident is None else "bad_type", "userIdentity: not an object"
        )
    params = get("requestParameters") or {}
    extra = get("additionalEventData") or {}
    if type(params) is not dict or type(extra) is not dict:
        raise reject("bad_type", "requestParameters/additionalEventData: not objects")
    return event_source, event_name, ident, params, extra


def parse_cloudtrail(record: dict[str, Any], max_ts: float) -> Event:
    """Normalise one CloudTrail record; raises ParseError.

    Written for speed (it runs once per record): local lookups, the usual case of
    each string field checked inline (``opt_str`` only for the odd one), fields
    read in the order that decides which error a bad record reports.
    """
    get = record.get
    stamp = get("eventTime")
    timestamp = to_epoch(stamp if stamp is not None else get("@timestamp"), "eventTime", max_ts)
    event_source, event_name, ident, params, extra = _checked_parts(get)
    ip = get("sourceIPAddress")
    if type(ip) is not str or not ip:
        ip = opt_str(ip, "sourceIPAddress")
    event_id = get("eventID")
    if type(event_id) is not str or not event_id:
        event_id = opt_str(event_id, "eventID") or content_id(record)
    entity, entity_type, peer_group, user_name, user_id = principal(ident)
    category = get("eventCategory")
    if type(category) is not str or not category:
        category = opt_str(category, "eventCategory")
    agent = get("userAgent")
    if type(agent) is not str or not agent:
        agent = opt_str(agent, "userAgent")
    event = Event(
        timestamp,
        event_id,
        "cloudtrail",
        entity,
        entity_type,
        peer_group,
        user_name,
        user_id,
        _action_cached(event_source, event_name),
        outcome_of(record, event_name),
        category,
        ip,
        network_of(ip) if ip else None,
        None,  # country: CloudTrail carries no geo
        agent,
        event_source,
        resource_of(record, params),
    )
    if extra:
        event.bytes_out = opt_num(extra.get("bytesTransferredOut"), "bytesTransferredOut")
        event.bytes_in = opt_num(extra.get("bytesTransferredIn"), "bytesTransferredIn")
    if event_name in BEDROCK_INVOKE:
        add_bedrock(event, event_source, event_name, params, extra)
    return event
