"""Public entry points: ``generate`` (simulated clock), ``live`` (wall clock), ``write_jsonl``.

Normal traffic and attack messages are merged into one time-ordered stream.
Attacks are planned in the last 20 % of the timeline so every victim has
history first. Same arguments -> byte-identical output: all randomness comes
from generators seeded by ``seed``; ``live`` reads the clock only for timestamps.
"""

from __future__ import annotations

import csv
import heapq
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detector.synth.attacks import SCENARIOS
from detector.synth.population import Entity
from detector.synth.traffic import NormalTraffic
from detector.synth.world import FORMATS, Message, World

DEFAULT_START = 1793577600.0  # 2026-11-02T00:00:00Z, a Monday
HISTORY_FRACTION = 0.8  # attacks only after this share of the timeline


@dataclass(frozen=True, slots=True)
class Injection:
    """Run ``scenario`` starting at ``at`` (epoch s) against the entity keyed ``entity``."""

    scenario: str
    at: float
    entity: str


def _check_names(attacks: Sequence[str] | None) -> list[str]:
    names = list(SCENARIOS) if attacks is None else list(attacks)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown attack scenarios {unknown}; choose from {sorted(SCENARIOS)}")
    return names


def _victim(world: World, name: str, rnd: random.Random, used: set[str]) -> Entity | None:
    victims = [e for e in world.entities if SCENARIOS[name].victim(world, e)]
    fresh = [e for e in victims if e.key not in used] or victims
    return rnd.choice(fresh) if fresh else None


def _night(victims: list[Entity], lo: float, hi: float, rnd: random.Random) -> tuple[Entity, float]:
    """The first victim (in random order) for whom 03:00 local falls inside [lo, hi)."""
    rnd.shuffle(victims)
    for ent in victims:
        t = lo + (3 * 3600 - (lo + ent.tz_hours * 3600)) % 86400
        if t + 1800 < hi:
            return ent, t + rnd.uniform(0, 900)
    return victims[0], lo


def plan_attacks(
    world: World, rnd: random.Random, start: float, end: float, attacks: Sequence[str] | None
) -> list[Injection]:
    """One injection per usable scenario, spread over [start + 80 %, end)."""
    names = [n for n in _check_names(attacks) if set(SCENARIOS[n].formats) & set(world.formats)]
    lo = start + HISTORY_FRACTION * (end - start)
    slot = (end - lo) / max(len(names), 1)
    plan: list[Injection] = []
    used: set[str] = set()
    for k, name in enumerate(names):
        ent = _victim(world, name, rnd, used)
        if ent is None:
            continue
        at = lo + (k + rnd.uniform(0.0, 0.3)) * slot
        if SCENARIOS[name].night:
            pool = [e for e in world.entities if SCENARIOS[name].victim(world, e)]
            ent, at = _night(pool, lo, end, rnd)
        used.add(ent.key)
        plan.append(Injection(name, at, ent.key))
    return plan


def run_injection(world: World, inj: Injection, rnd: random.Random) -> list[Message]:
    """The labelled messages of one injection, time-ordered."""
    by_key = {e.key: e for e in world.entities}
    if inj.entity not in by_key:
        raise ValueError(f"injection {inj.scenario}: no entity {inj.entity!r}")
    msgs = SCENARIOS[inj.scenario].fn(world, by_key[inj.entity], inj.at, rnd)
    return sorted(msgs, key=lambda m: m.timestamp)


def _merged(
    traffic: NormalTraffic, start: float, end: float, attack_msgs: list[Message]
) -> Iterator[Message]:
    """Normal chunks (never crossing a UTC hour) with the attack messages that fall in them."""
    i, a = 0, start
    while a < end:
        b = min(end, (a // 3600 + 1) * 3600)
        chunk = traffic.chunk(a, b)
        j = i
        while j < len(attack_msgs) and attack_msgs[j].timestamp < b:
            j += 1
        if j > i:  # stable sort: on equal times normal traffic comes first
            chunk = sorted(chunk + attack_msgs[i:j], key=_ts)
        i, a = j, b
        yield from chunk


def generate(
    seed: int = 0,
    days: float = 14,
    n_users: int = 200,
    n_services: int = 20,
    n_api_keys: int = 30,
    events_per_day: int = 20_000,
    attacks: Sequence[str] | None = None,
    start: float | None = None,
    formats: Sequence[str] = FORMATS,
    *,
    topics: dict[str, str] | None = None,
    injections: Sequence[Injection] | None = None,
) -> Iterator[Message]:
    """Time-ordered messages over ``days`` of simulated time from ``start`` (epoch s).

    ``attacks`` names the scenarios to inject (default all, ``[]`` none); they are
    planned in the last 20 % of the timeline. ``injections`` replaces the plan
    with explicit (scenario, time, entity) triples. ``topics`` renames topics.
    """
    world = World(seed, (n_users, n_services, n_api_keys), formats, topics)
    t0 = DEFAULT_START if start is None else float(start)
    end = t0 + days * 86400.0
    rnd = random.Random(f"auditwatch-synth-attacks-{seed}")
    if injections is None:
        injections = plan_attacks(world, rnd, t0, end, attacks)
    attack_msgs = [m for inj in injections for m in run_injection(world, inj, rnd)]
    attack_msgs = sorted((m for m in attack_msgs if t0 <= m.timestamp < end), key=_ts)
    traffic = NormalTraffic(world, events_per_day, np.random.default_rng([seed, 1]))
    return _merged(traffic, t0, end, attack_msgs)


def _ts(m: Message) -> float:
    return m.timestamp


def live(
    seed: int,
    rate_per_s: float,
    *,
    n_users: int = 50,
    n_services: int = 8,
    n_api_keys: int = 10,
    attack_every_s: float = 120.0,
    attacks: Sequence[str] | None = None,
    formats: Sequence[str] = FORMATS,
    topics: dict[str, str] | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Message]:
    """Endless traffic at about ``rate_per_s`` (weekly average) with wall-clock timestamps.

    Each message is yielded once ``clock()`` reaches its timestamp (``sleep`` paces
    it). Every ``attack_every_s`` seconds the next scenario (cycling) starts.
    """
    world = World(seed, (n_users, n_services, n_api_keys), formats, topics)
    traffic = NormalTraffic(world, rate_per_s * 86400.0, np.random.default_rng([seed, 2]))
    names = [n for n in _check_names(attacks) if set(SCENARIOS[n].formats) & set(world.formats)]
    rnd = random.Random(f"auditwatch-synth-live-{seed}")
    t = clock()
    next_attack, k = t + attack_every_s, 0
    pending: list[Message] = []
    while True:
        b = min(t + 10.0, (t // 3600 + 1) * 3600)
        while names and next_attack < b:
            pending.extend(_live_attack(world, names[k % len(names)], next_attack, rnd))
            next_attack, k = next_attack + attack_every_s, k + 1
        pending.sort(key=_ts)
        due = [m for m in pending if m.timestamp < b]
        pending = pending[len(due) :]
        yield from _paced(heapq.merge(traffic.chunk(t, b), due, key=_ts), clock, sleep)
        t = b


def _paced(
    msgs: Iterator[Message], clock: Callable[[], float], sleep: Callable[[float], None]
) -> Iterator[Message]:
    """Yield each message once the clock has reached its timestamp."""
    for m in msgs:
        wait = m.timestamp - clock()
        if wait > 0:
            sleep(wait)
        yield m


def _live_attack(world: World, name: str, at: float, rnd: random.Random) -> list[Message]:
    sc = SCENARIOS[name]
    pool = [e for e in world.entities if sc.victim(world, e)]
    if not pool:
        return []
    if sc.night:  # prefer someone for whom it is night now
        night = [e for e in pool if (at / 3600 + e.tz_hours) % 24 < 5] or pool
        pool = night
    return sc.fn(world, rnd.choice(pool), at, rnd)


def write_jsonl(path: str | Path, **generate_kwargs: Any) -> int:
    """Write ``generate(**generate_kwargs)`` values one per line to ``path``.

    Beside it, ``labels.csv`` gets one row per message: event_id,label,topic
    (label empty for normal traffic). Returns the number of messages written.
    """
    path = Path(path)
    n = 0
    with path.open("wb") as out, (path.parent / "labels.csv").open("w", newline="") as lab:
        writer = csv.writer(lab)
        writer.writerow(("event_id", "label", "topic"))
        for m in generate(**generate_kwargs):
            out.write(m.value + b"\n")
            writer.writerow((m.event_id, m.label or "", m.topic))
            n += 1
    return n
