"""Seeded synthetic audit-log and ML-inference traffic with labelled attacks.

>>> from detector.synth import generate
>>> msgs = list(generate(seed=1, days=0.05, n_users=10, n_services=2, n_api_keys=3,
...                      events_per_day=2000, attacks=[]))
>>> sorted({m.topic for m in msgs}) == ["cloudtrail", "ecs", "inference"]
True

See docs/synthetic-traffic.md.
"""

from detector.synth.attacks import SCENARIOS
from detector.synth.stream import (
    DEFAULT_START,
    Injection,
    generate,
    live,
    plan_attacks,
    write_jsonl,
)
from detector.synth.world import FORMATS, Message, World

__all__ = [
    "DEFAULT_START",
    "FORMATS",
    "SCENARIOS",
    "Injection",
    "Message",
    "World",
    "generate",
    "live",
    "plan_attacks",
    "write_jsonl",
]
