"""The simulated organisation: users, service roles and API keys with habits.

Each entity has a home network (/24), a country and time zone, user agents, a
personal set of actions/resources, a log-normal data volume and an hourly
activity profile (168 hours of the week, UTC). Built once from a seeded
``random.Random``; nothing here reads the clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector.synth import catalog as cat
from detector.synth.catalog import ActionSpec, ct, ecs

HUMAN_KINDS = ("analyst", "engineer", "admin")

# Relative activity by local hour (0..23) for each behaviour class.
_OFFICE: tuple[float, ...] = (0.02,) * 6 + (0.05, 0.3, 0.8) + (1.0,) * 3 + (0.7,) + (1.0,) * 4
_OFFICE += (0.7, 0.35, 0.15, 0.12, 0.1, 0.08, 0.04)
_CUSTOMER = tuple(0.25 + 0.75 * max(0.0, float(np.sin(np.pi * (h - 6) / 17))) for h in range(24))
WEEKEND = {"human": 0.08, "service": 1.0, "api_key": 0.6}


@dataclass(eq=False, slots=True)
class Entity:
    """A principal whose behaviour is simulated. ``key`` is also the Kafka key."""

    key: str
    kind: str  # analyst | engineer | admin | service | api_key
    user_id: str
    country: str
    tz_hours: float
    region: str
    networks: tuple[str, ...]  # "/24" prefixes like "10.20.3"; the first is home
    hosts: tuple[int, ...]
    agents: dict[str, tuple[str, ...]]  # per format
    actions: tuple[ActionSpec, ...]
    bytes_mu: float  # log-normal parameters of bytes moved per event
    bytes_sigma: float
    rows_mu: float
    activity: float  # relative share of the organisation's traffic
    hours: tuple[float, ...]  # weight by local hour
    shift: float = 0.0  # personal habit: hours earlier/later than the local norm
    identity: dict[str, Any] = field(default_factory=dict)  # CloudTrail userIdentity
    owner: str = ""  # API keys: the service that owns the key (user.id)

    @property
    def behaviour(self) -> str:
        return "human" if self.kind in HUMAN_KINDS else self.kind


def _pick(rnd: random.Random, items: tuple[str, ...], k: int) -> tuple[str, ...]:
    return tuple(rnd.sample(items, min(k, len(items))))


def _human_actions(kind: str, rnd: random.Random) -> list[ActionSpec]:
    data = _pick(rnd, cat.DATA_BUCKETS, 2)
    tables = _pick(rnd, cat.PLAIN_TABLES, 3)
    common = [
        ct("signin", "ConsoleLogin", "console_login", read_only=False, weight=0.4),
        ct("sts", "GetCallerIdentity", weight=0.3),
        ecs("authentication", "logged-in", weight=0.6),
        ecs("web", "http-request", resources=_pick(rnd, cat.WEB_PATHS, 3), weight=2.0),
        ecs("file", "file-read", resources=_pick(rnd, cat.FILE_PATHS, 2), weight=0.4),
    ]
    if kind == "analyst":
        return common + _analyst_actions(rnd, data, tables)
    if kind == "engineer":
        return common + _engineer_actions(rnd, tables)
    return common + _ADMIN_ACTIONS


def _analyst_actions(
    rnd: random.Random, data: tuple[str, ...], tables: tuple[str, ...]
) -> list[ActionSpec]:
    pii = (rnd.choice(cat.PII_TABLES),)
    return [
        ct("s3", "GetObject", "s3_object", resources=data, weight=2.0),
        ct("s3", "ListObjects", "s3_bucket", resources=data, weight=0.8),
        ct("athena", "StartQueryExecution", read_only=False, weight=1.0),
        ct("athena", "GetQueryResults", weight=1.0),
        ct("bedrock", "InvokeModel", "bedrock", weight=0.5),
        ecs("database", "query", resources=tables + pii, weight=3.0),
    ]


def _engineer_actions(rnd: random.Random, tables: tuple[str, ...]) -> list[ActionSpec]:
    arts = _pick(rnd, cat.ARTIFACT_BUCKETS, 2)
    return [
        ct("ec2", "DescribeInstances", weight=1.5),
        ct("ssm", "GetParameter", weight=1.0),
        ct("kms", "Decrypt", weight=0.8),
        ct("s3", "GetObject", "s3_object", resources=arts, weight=1.2),
        ct("s3", "PutObject", "s3_object", read_only=False, resources=arts, weight=0.5),
        ct("logs", "FilterLogEvents", weight=1.0),
        ct("lambda", "UpdateFunctionCode", read_only=False, weight=0.2),
        ct("bedrock", "InvokeModel", "bedrock", weight=0.6),
        ecs("database", "query", resources=tables[:1], bytes_scale=0.2, weight=0.8),
    ]


_ADMIN_ACTIONS = [
    ct("iam", "ListUsers", weight=1.2),
    ct("iam", "ListRoles", weight=0.8),
    ct("iam", "GetUser", weight=0.8),
    ct("iam", "CreateAccessKey", "iam_admin", read_only=False, weight=0.08),
    ct("iam", "AttachUserPolicy", "iam_admin", read_only=False, weight=0.05),
    ct("cloudtrail", "DescribeTrails", weight=0.4),
    ct("cloudtrail", "GetTrailStatus", weight=0.4),
    ct("ec2", "DescribeInstances", weight=0.8),
]


def _service_actions(rnd: random.Random) -> list[ActionSpec]:
    buckets = _pick(rnd, cat.DATA_BUCKETS + cat.ARTIFACT_BUCKETS, 2)
    table = _pick(rnd, cat.PLAIN_TABLES, 2)
    return [
        ct("s3", "GetObject", "s3_object", resources=buckets, weight=3.0),
        ct("s3", "PutObject", "s3_object", read_only=False, resources=buckets[:1], weight=1.5),
        ct("kms", "GenerateDataKey", weight=0.8),
        ct("kms", "Decrypt", weight=1.0),
        ct("ssm", "GetParameter", weight=0.5),
        ecs("database", "query", resources=table, weight=2.0),
    ]


def _identity_user(name: str, rnd: random.Random) -> dict[str, Any]:
    suffix = "".join(rnd.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", k=16))
    return {
        "type": "IAMUser",
        "principalId": "AIDA" + suffix,
        "arn": f"arn:aws:iam::{cat.ACCOUNT_ID}:user/{name}",
        "accountId": cat.ACCOUNT_ID,
        "accessKeyId": "AKIA" + suffix[::-1],
        "userName": name,
    }


def _identity_role(role: str, rnd: random.Random) -> dict[str, Any]:
    suffix = "".join(rnd.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", k=16))
    session = f"{role}-{rnd.randrange(10**12, 10**13)}"
    role_arn = f"arn:aws:iam::{cat.ACCOUNT_ID}:role/{role}"
    return {
        "type": "AssumedRole",
        "principalId": f"AROA{suffix}:{session}",
        "arn": f"arn:aws:sts::{cat.ACCOUNT_ID}:assumed-role/{role}/{session}",
        "accountId": cat.ACCOUNT_ID,
        "accessKeyId": "ASIA" + suffix[::-1],
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROA" + suffix,
                "arn": role_arn,
                "accountId": cat.ACCOUNT_ID,
                "userName": role,
            },
            "webIdFederationData": {},
            "attributes": {"creationDate": "2026-10-01T00:00:00Z", "mfaAuthenticated": "false"},
        },
    }


def _unique(name: str, taken: set[str]) -> str:
    out, n = name, 1
    while out in taken:
        n += 1
        out = f"{name}{n}"
    taken.add(out)
    return out


def make_user(i: int, kind: str, rnd: random.Random, taken: set[str]) -> Entity:
    """An analyst, engineer or admin working from an office /24 (and sometimes home)."""
    name = _unique(f"{rnd.choice(cat.FIRST_NAMES)}.{rnd.choice(cat.LAST_NAMES)}", taken)
    site_i = rnd.choices(range(len(cat.SITES)), cat.SITE_WEIGHTS)[0]
    country, tz, region, octets = cat.SITES[site_i]
    office = f"10.{20 + site_i}.{rnd.randrange(4)}"
    home = f"{rnd.choice(octets)}.{rnd.randrange(256)}.{rnd.randrange(256)}"
    volume = {"analyst": (14.5, 1.0, 6.2), "engineer": (12.2, 1.2, 3.9), "admin": (10.0, 0.8, 2.0)}
    mu, sigma, rows_mu = volume[kind]
    ct_agents = {"analyst": (cat.CONSOLE_AGENT, cat.CLI_AGENTS[0]), "admin": (cat.CONSOLE_AGENT,)}
    browser = rnd.choice(cat.BROWSERS)
    return Entity(
        key=name,
        kind=kind,
        user_id=f"u-{10000 + i}",
        country=country,
        tz_hours=tz,
        region=region,
        networks=(office, home),
        hosts=(rnd.randrange(10, 250), rnd.randrange(2, 250)),
        agents={
            "cloudtrail": ct_agents.get(kind, (rnd.choice(cat.CLI_AGENTS), cat.CLI_AGENTS[2])),
            "browser": (browser,),
            "database": (rnd.choice(cat.DB_AGENTS),),
        },
        actions=tuple(_human_actions(kind, rnd)),
        bytes_mu=mu + rnd.gauss(0, 0.3),
        bytes_sigma=sigma,
        rows_mu=rows_mu + rnd.gauss(0, 0.3),
        activity=rnd.lognormvariate(0, 0.5) * (0.6 if kind == "admin" else 1.0),
        hours=_OFFICE,
        shift=max(-2.0, min(2.0, rnd.gauss(0, 0.8))),
        identity=_identity_user(name, rnd),
    )


def make_service(i: int, rnd: random.Random) -> Entity:
    """A batch-job role: fixed network and SDK agent, hourly or nightly schedule."""
    base = cat.SERVICE_NAMES[i % len(cat.SERVICE_NAMES)]
    role = f"{base}-role" if i < len(cat.SERVICE_NAMES) else f"{base}-{i}-role"
    nightly = rnd.random() < 0.5
    runs = set(rnd.sample(range(0, 6), 2)) if nightly else set()
    hours = tuple(4.0 if h in runs else (0.15 if nightly else 1.0) for h in range(24))
    return Entity(
        key=role,
        kind="service",
        user_id=f"svc-{base}",
        country="US",
        tz_hours=0.0,
        region="us-east-1",
        networks=(f"10.100.{i % 250}",),
        hosts=tuple(rnd.randrange(10, 250) for _ in range(3)),
        agents={
            "cloudtrail": (rnd.choice(cat.SDK_AGENTS),),
            "database": (rnd.choice(cat.DRIVER_AGENTS),),
        },
        actions=tuple(_service_actions(rnd)),
        bytes_mu=15.0 + rnd.gauss(0, 0.5),
        bytes_sigma=0.4,
        rows_mu=8.5 + rnd.gauss(0, 0.5),
        activity=rnd.lognormvariate(0, 0.4),
        hours=hours,
        identity=_identity_role(role, rnd),
    )


def make_api_key(i: int, rnd: random.Random) -> Entity:
    """An API key calling 1-2 ML models from a service network or a customer site."""
    internal = rnd.random() < 0.6
    site_i = rnd.choices(range(len(cat.SITES)), cat.SITE_WEIGHTS)[0]
    country, tz, region, octets = cat.SITES[site_i]
    net = (
        f"10.110.{i % 250}" if internal else f"{rnd.choice(octets)}.{rnd.randrange(256)}.{i % 256}"
    )
    models = rnd.sample(cat.INFERENCE_MODELS, rnd.choice((1, 1, 2)))
    return Entity(
        key=f"ak_live_{rnd.getrandbits(40):010x}",
        kind="api_key",
        user_id=rnd.choice(cat.API_OWNERS),
        country="US" if internal else country,
        tz_hours=tz,
        region=region,
        networks=(net,),
        hosts=tuple(rnd.randrange(10, 250) for _ in range(2)),
        agents={"inference": (rnd.choice(cat.HTTP_CLIENTS),)},
        actions=tuple(ActionSpec("inference", "ml", m, "inference") for m in models),
        bytes_mu=0.0,
        bytes_sigma=0.0,
        rows_mu=0.0,
        activity=rnd.lognormvariate(0, 0.8),
        hours=_CUSTOMER,
    )


def build_population(seed: int, n_users: int, n_services: int, n_api_keys: int) -> list[Entity]:
    """All entities, users first; same arguments give the same population."""
    rnd = random.Random(f"auditwatch-synth-population-{seed}")
    taken: set[str] = set()
    kinds = rnd.choices(HUMAN_KINDS, (0.45, 0.45, 0.1), k=n_users)
    # Every scenario needs its victims; keep at least two of each human kind.
    for j, kind in enumerate(HUMAN_KINDS * 2):
        if j < n_users:
            kinds[j] = kind
    users = [make_user(i, k, rnd, taken) for i, k in enumerate(kinds)]
    services = [make_service(i, rnd) for i in range(n_services)]
    keys = [make_api_key(i, rnd) for i in range(n_api_keys)]
    return users + services + keys
