"""Attack scenarios: each turns (victim, start time) into labelled messages.

A scenario function has the signature ``fn(world, victim, at, rnd) -> list[Message]``
and emits only in the formats the world has enabled. ``SCENARIOS`` maps the
label to the function, a victim predicate and the formats it can use.
docs/synthetic-traffic.md describes what each one looks like and why.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from detector.synth import catalog as cat
from detector.synth.access import cloudtrail_record, ecs_record, uuid_block, uuid_str
from detector.synth.catalog import ActionSpec, ct, ecs
from detector.synth.inference import INPUT_BOX, inference_record
from detector.synth.population import HUMAN_KINDS, Entity
from detector.synth.world import Message, World

KALI_CLI = "aws-cli/2.13.0 Python/3.11.4 Linux/6.5.0-kali3-amd64 exe/x86_64.kali.2023 prompt/off"
ATTACKER_BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0"


def _ct(
    world: World, ent: Entity, spec: ActionSpec, ts: float, where: tuple[str, str], label: str,
    rnd: random.Random, **kw: Any,
) -> Message:  # fmt: skip
    ids = (uuid_str(rnd.getrandbits(128)), uuid_str(rnd.getrandbits(128)))
    ts = float(int(ts))  # CloudTrail has whole seconds
    rec = cloudtrail_record(ent, spec, ts, ids, where[0], where[1], **kw)
    return world.message("cloudtrail", ent, ts, rec, label)


def _ecs(
    world: World, ent: Entity, spec: ActionSpec, ts: float, where: tuple[str, str, str],
    label: str, rnd: random.Random, **kw: Any,
) -> Message:  # fmt: skip
    ts = math.floor(ts * 1000.0) / 1000.0
    rec = ecs_record(ent, spec, ts, uuid_str(rnd.getrandbits(128)), *where, **kw)
    return world.message("ecs", ent, ts, rec, label)


def _usual(world: World, ent: Entity, rnd: random.Random) -> tuple[str, str]:
    """The victim's own address and CloudTrail agent (insider / same-device attacks)."""
    return world.ip_of(ent, rnd.random()), ent.agents["cloudtrail"][0]


def bulk_exfiltration(world: World, ent: Entity, at: float, rnd: random.Random) -> list[Message]:
    """An insider pulls 100-1000x their usual rows/bytes from PII tables and buckets at night."""
    label, out = "bulk_exfiltration", []
    ip, agent = _usual(world, ent, rnd)
    t = at
    for _ in range(rnd.randint(25, 50)):
        t += rnd.expovariate(1 / 20.0)
        blowup = rnd.uniform(100, 1000)
        if "ecs" in world.formats:
            rows = int(math.exp(ent.rows_mu) * blowup)
            spec = ecs("database", "query")
            where = (ip, ent.country, ent.agents["database"][0])
            out.append(
                _ecs(world, ent, spec, t, where, label, rnd,
                     resource=rnd.choice(cat.PII_TABLES), amount=rows * 180, rows=rows)
            )  # fmt: skip
        if "cloudtrail" in world.formats:
            spec = ct("s3", "GetObject", "s3_object")
            res = f"{rnd.choice(cat.PII_BUCKETS)}/{rnd.choice(cat.S3_KEYS)}"
            amount = int(math.exp(ent.bytes_mu) * blowup)
            out.append(
                _ct(world, ent, spec, t + 1, (ip, agent), label, rnd, resource=res, amount=amount)
            )
    return out


def stolen_credentials(world: World, ent: Entity, at: float, rnd: random.Random) -> list[Message]:
    """Credentials replayed from a Tor exit (new /24, new country, new agent)."""
    label, out = "stolen_credentials", []
    ip = f"{cat.TOR_NETWORK}.{rnd.randrange(1, 255)}"
    calls = [ct("sts", "GetCallerIdentity"), ct("s3", "ListBuckets"), ct("iam", "ListUsers")]
    calls += [ct("s3", "GetObject", "s3_object")] * rnd.randint(5, 12)
    t = at
    for spec in calls if "cloudtrail" in world.formats else []:
        t += rnd.expovariate(1 / 15.0)
        res = f"{rnd.choice(cat.DATA_BUCKETS)}/{rnd.choice(cat.S3_KEYS)}"
        amount = int(math.exp(ent.bytes_mu + 1.0))
        out.append(
            _ct(world, ent, spec, t, (ip, KALI_CLI), label, rnd, resource=res, amount=amount)
        )
    if "ecs" in world.formats:
        where = (ip, "DE", ATTACKER_BROWSER)
        out.append(_ecs(world, ent, ecs("authentication", "logged-in"), at, where, label, rnd))
        for path in ("/admin/users", "/api/v1/customers/search", "/wiki/runbooks"):
            spec, t = ecs("web", "http-request"), t + rnd.expovariate(1 / 10.0)
            out.append(_ecs(world, ent, spec, t, where, label, rnd, resource=path, amount=90_000))
    return out


def first_time_admin(world: World, ent: Entity, at: float, rnd: random.Random) -> list[Message]:
    """A non-admin suddenly creates keys, grants admin and stops the audit trail."""
    label, where = "first_time_admin", _usual(world, ent, rnd)
    target = ent.key
    key_id = "AKIA" + "".join(rnd.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", k=16))
    steps: list[tuple[str, str, dict[str, Any], Any]] = [
        ("iam", "CreateAccessKey", {"userName": target},
         {"accessKey": {"accessKeyId": key_id, "status": "Active", "userName": target}}),
        ("iam", "AttachUserPolicy",
         {"userName": target, "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}, None),
        ("cloudtrail", "StopLogging",
         {"name": f"arn:aws:cloudtrail:us-east-1:{cat.ACCOUNT_ID}:trail/org-trail"}, None),
    ]  # fmt: skip
    out, t = [], at
    for source, name, params, response in steps:
        t += rnd.uniform(20, 120)
        spec = ct(source, name, read_only=False)
        out.append(_ct(world, ent, spec, t, where, label, rnd, params=params, response=response))
    return out


def console_brute_force(world: World, ent: Entity, at: float, rnd: random.Random) -> list[Message]:
    """Many failed sign-ins from one foreign IP, then a success from the same IP."""
    label, out = "console_brute_force", []
    net, country = cat.ATTACKER_NETWORKS[1]
    ip = f"{net}.{rnd.randrange(1, 255)}"
    n, t = rnd.randint(60, 200), at
    for i in range(n + 1):
        t += rnd.uniform(0.5, 4.0)
        failed = i < n
        if "cloudtrail" in world.formats:
            spec = ct("signin", "ConsoleLogin", "console_login", read_only=False)
            out.append(_ct(world, ent, spec, t, (ip, ATTACKER_BROWSER), label, rnd, failed=failed))
        else:
            spec, where = ecs("authentication", "logged-in"), (ip, country, ATTACKER_BROWSER)
            out.append(_ecs(world, ent, spec, t, where, label, rnd, failed=failed))
    return out


def service_interactive(world: World, ent: Entity, at: float, rnd: random.Random) -> list[Message]:
    """A batch-job role's credentials used by a person: browser/CLI from a workstation /24."""
    label, out = "service_interactive", []
    office = f"10.{20 + rnd.randrange(len(cat.SITES))}.{rnd.randrange(4)}.{rnd.randrange(10, 250)}"
    agent = rnd.choice((cat.CLI_AGENTS[0], cat.BROWSERS[0]))
    calls = [ct("sts", "GetCallerIdentity"), ct("s3", "ListBuckets"), ct("iam", "ListRoles")]
    calls += [ct("ec2", "DescribeInstances"), ct("secretsmanager", "ListSecrets")]
    calls += [ct("s3", "GetObject", "s3_object")] * rnd.randint(5, 15)
    t = at
    for spec in calls if "cloudtrail" in world.formats else []:
        t += rnd.expovariate(1 / 40.0)
        res = f"{rnd.choice(cat.ARTIFACT_BUCKETS)}/{rnd.choice(cat.S3_KEYS)}"
        amount = int(math.exp(ent.bytes_mu - 2))
        out.append(
            _ct(world, ent, spec, t, (office, agent), label, rnd, resource=res, amount=amount)
        )
    if "ecs" in world.formats:
        where = (office, "US", rnd.choice(cat.DB_AGENTS))
        for table in rnd.sample(cat.PLAIN_TABLES, 3):
            t += rnd.expovariate(1 / 60.0)
            rows = int(math.exp(ent.rows_mu - 3))
            out.append(_ecs(world, ent, ecs("database", "query"), t, where, label, rnd,
                            resource=table, amount=rows * 180, rows=rows))  # fmt: skip
    return out


def _vector_model(world: World, ent: Entity) -> str | None:
    dims = [s.name for s in ent.actions if s.fmt == "inference" and world.models[s.name].dim]
    return dims[0] if dims else None


def _queries(
    world: World, ent: Entity, at: float, vectors: np.ndarray, confidence: np.ndarray,
    gaps: np.ndarray, label: str, rng: np.random.Generator,
) -> list[Message]:  # fmt: skip
    """One inference message per row of ``vectors``, from the key's usual client."""
    model = world.models[_vector_model(world, ent) or ""]
    ip, agent = world.ip_of(ent, 0.5), ent.agents["inference"][0]
    vectors = np.round(vectors, 3)
    eids = uuid_block(rng.integers(0, 256, size=(len(vectors), 16), dtype=np.uint8))
    out, t = [], at
    for vec, conf, gap, eid in zip(vectors, confidence.tolist(), gaps.tolist(), eids, strict=True):
        t = math.floor((t + gap) * 1000.0) / 1000.0
        rec = inference_record(
            ent, model, t, eid, ip, agent, vector=vec, confidence=conf,
            latency_ms=model.latency_ms,
        )  # fmt: skip
        out.append(world.message("inference", ent, t, rec, label))
    return out


def model_extraction(world: World, ent: Entity, at: float, rnd: random.Random) -> list[Message]:
    """PRADA-style extraction: thousands of fast queries spread uniformly over the input box.

    The model is unsure on such unnatural inputs, so top-class confidence is low.
    """
    model = world.models[_vector_model(world, ent) or ""]
    rng = np.random.default_rng(rnd.getrandbits(64))
    n = rnd.randint(2000, 4000)
    vectors = rng.uniform(-INPUT_BOX, INPUT_BOX, size=(n, model.dim))
    floor = 1.0 / model.n_classes
    confidence = floor + (1.0 - floor) * rng.uniform(0.0, 0.35, size=n)
    gaps = rng.exponential(1.0 / rnd.uniform(6.0, 12.0), size=n)
    return _queries(world, ent, at, vectors, confidence, gaps, "model_extraction", rng)


def membership_inference(world: World, ent: Entity, at: float, rnd: random.Random) -> list[Message]:
    """Repeated near-duplicates of a few records, probing for over-confident answers."""
    model = world.models[_vector_model(world, ent) or ""]
    rng = np.random.default_rng(rnd.getrandbits(64))
    n, probes = rnd.randint(300, 600), rnd.randint(2, 5)
    bases = model.centres[rng.integers(0, len(model.centres), probes)]
    bases = bases + model.spread * rng.standard_normal((probes, model.dim))
    vectors = bases[rng.integers(0, probes, n)] + 0.01 * rng.standard_normal((n, model.dim))
    confidence = rng.uniform(0.97, 0.999, size=n)
    gaps = rng.exponential(0.5, size=n)
    return _queries(world, ent, at, vectors, confidence, gaps, "membership_inference", rng)


ScenarioFn = Callable[[World, Entity, float, random.Random], list[Message]]


@dataclass(frozen=True, slots=True)
class Scenario:
    """An attack: its generator, which entities can be victims, usable formats."""

    fn: ScenarioFn
    victim: Callable[[World, Entity], bool]
    formats: tuple[str, ...]
    night: bool = False  # starts at 03:00 in the victim's local time


SCENARIOS: dict[str, Scenario] = {
    "bulk_exfiltration": Scenario(
        bulk_exfiltration, lambda w, e: e.kind == "analyst", ("ecs", "cloudtrail"), night=True
    ),
    "stolen_credentials": Scenario(
        stolen_credentials,
        lambda w, e: e.kind in HUMAN_KINDS and e.country != "DE",
        ("cloudtrail", "ecs"),
    ),
    "first_time_admin": Scenario(
        first_time_admin, lambda w, e: e.kind in ("analyst", "engineer"), ("cloudtrail",)
    ),
    "console_brute_force": Scenario(
        console_brute_force, lambda w, e: e.kind in HUMAN_KINDS, ("cloudtrail", "ecs")
    ),
    "model_extraction": Scenario(
        model_extraction, lambda w, e: _vector_model(w, e) is not None, ("inference",)
    ),
    "membership_inference": Scenario(
        membership_inference, lambda w, e: _vector_model(w, e) is not None, ("inference",)
    ),
    "service_interactive": Scenario(
        service_interactive, lambda w, e: e.kind == "service", ("cloudtrail", "ecs")
    ),
}
