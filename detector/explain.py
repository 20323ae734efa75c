"""Explanations: each unusual feature in words, against the baseline it was compared with."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from detector.events import Event

Context = dict[str, Any]


def human_bytes(n: float) -> str:
    """
    >>> human_bytes(2.1e9), human_bytes(4_000_000), human_bytes(512)
    ('2.1 GB', '4 MB', '512 B')
    """
    if n != n:
        return "n/a"
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= size:
            return f"{_short(n / size)} {unit}"
    return f"{n:.0f} B"


def human_count(n: float) -> str:
    """
    >>> human_count(1_250_000), human_count(200), human_count(3.5)
    ('1.2M', '200', '3.5')
    """
    if n != n:
        return "n/a"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{_short(n / size)}{unit}"
    return _short(n)


def _short(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 10 or x == int(x) else f"{x:.1f}"


def _volume(label: str, observed: float, ctx: Context, key: str, fmt: Callable) -> str:
    usual, p99 = ctx.get(f"{key}_usual", math.nan), ctx.get(f"{key}_p99", math.nan)
    return f"{label} {fmt(observed)} vs usual {fmt(usual)} (p99 {fmt(p99)})"


def _hours(ev: Event, ctx: Context) -> str:
    clock = time.strftime("%H:%M", time.gmtime(ev.timestamp))
    day = time.strftime("%a", time.gmtime(ev.timestamp))
    usual = ctx["profile"].habit.usual_hours()
    if usual is None:
        return f"{day} {clock} UTC, an hour its peers are rarely active"
    return f"{day} {clock} UTC, outside usual {usual[0]:02d}:00-{usual[1]:02d}:00"


def _who(ctx: Context, ev: Event) -> str:
    cold = ctx.get("weight", 1.0) < 1.0
    return (
        f"this {ev.entity_type} (new: compared with its peer group)"
        if cold
        else (f"this {ev.entity_type}")
    )


def _rate(ev: Event, ctx: Context) -> str:
    now, usual = ctx["rate_short"] * 300, ctx["rate_long"] * 300
    return f"{human_count(now)} events in 5 min vs usual {human_count(usual)}"


def _shift(signal: str, ctx: Context) -> str:
    recent, usual = ctx.get(f"{signal}_recent", math.nan), ctx.get(f"{signal}_usual", math.nan)
    return f"recent output {signal} {recent:.2f} vs usual {usual:.2f}"


def _rarity(kind: str, value: str | None, surprise: float) -> str:
    share = math.exp(-surprise) * 100
    return f"{kind} {value} is rare across all entities ({share:.2g}% of events)"


TEMPLATES: dict[str, Callable[[Event, Context, float], str]] = {
    "rate_vs_baseline": lambda ev, ctx, v: _rate(ev, ctx),
    "new_network": lambda ev, ctx, v: f"first use of network {ev.network} by {_who(ctx, ev)}",
    "new_user_agent": lambda ev, ctx, v: (
        f"first use of user agent '{ev.user_agent}' by {_who(ctx, ev)}"
    ),
    "new_action": lambda ev, ctx, v: f"first time {_who(ctx, ev)} performed {ev.action}",
    "new_resource": lambda ev, ctx, v: f"first access to {ev.resource} by {_who(ctx, ev)}",
    "new_country": lambda ev, ctx, v: (
        f"first activity from country {ev.country} by {_who(ctx, ev)}"
    ),
    "new_model": lambda ev, ctx, v: f"first call to model {ev.model} by {_who(ctx, ev)}",
    "bytes_out_vs_baseline": lambda ev, ctx, v: _volume(
        "bytes out", ev.bytes_out, ctx, "bytes", human_bytes
    ),
    "rows_vs_baseline": lambda ev, ctx, v: _volume("rows read", ev.rows, ctx, "rows", human_count),
    "hour_rarity": lambda ev, ctx, v: _hours(ev, ctx),
    "failure_ratio": lambda ev, ctx, v: (
        f"failure ratio {v:.0%} over recent events (this one: {ev.outcome})"
    ),
    "distinct_resources_10m": lambda ev, ctx, v: (
        f"about {math.expm1(v):.0f} distinct resources touched in 10 min"
    ),
    "action_rarity": lambda ev, ctx, v: _rarity("action", ev.action, v),
    "resource_rarity": lambda ev, ctx, v: _rarity("resource", ev.resource, v),
    "input_novelty": lambda ev, ctx, v: (
        f"inputs far from the model's normal traffic (distance {v:.1f} standard deviations)"
    ),
    "query_distance": lambda ev, ctx, v: (
        (
            "queries unusually far apart (synthetic/probing inputs)"
            if v > 0
            else "near-duplicate queries (membership-inference probing)"
        )
        + f": distance to own recent queries x{math.exp(v):.2g} the model's typical"
    ),
    "confidence_shift": lambda ev, ctx, v: _shift("confidence", ctx),
    "entropy_shift": lambda ev, ctx, v: _shift("entropy", ctx),
    "payload_vs_baseline": lambda ev, ctx, v: _volume(
        "payload",
        ev.input_size if ev.input_size == ev.input_size else ev.input_tokens,
        ctx,
        "payload",
        human_count,
    ),
    "output_tokens_vs_baseline": lambda ev, ctx, v: _volume(
        "output tokens", ev.output_tokens, ctx, "output_tokens", human_count
    ),
}

BASELINE_KEYS = {
    "bytes_out_vs_baseline": "bytes_usual",
    "rows_vs_baseline": "rows_usual",
    "payload_vs_baseline": "payload_usual",
    "output_tokens_vs_baseline": "output_tokens_usual",
    "rate_vs_baseline": "rate_long",
    "confidence_shift": "confidence_usual",
}
OBSERVED = {
    "bytes_out_vs_baseline": lambda ev: ev.bytes_out,
    "rows_vs_baseline": lambda ev: ev.rows,
    "output_tokens_vs_baseline": lambda ev: ev.output_tokens,
    "confidence_shift": lambda ev: ev.confidence,
}


def explain(
    names: tuple[str, ...], row: Any, unusualness: Any, ev: Event, ctx: Context, top: int
) -> list[dict[str, Any]]:
    """The ``top`` most unusual features (by ``unusualness``), each as text + numbers."""
    order = [
        i
        for i in sorted(range(len(names)), key=lambda i: -float(unusualness[i]))
        if _reported(names[i], ev) and unusualness[i] > 0
    ]  # what the event did not report explains nothing
    chosen = [i for i in order[:top] if unusualness[i] >= 2.0] or order[:1]
    if not chosen:
        return [{"feature": "combination", "text": COMBINATION, "value": None}]
    out = []
    for i in chosen:
        name, value = names[i], float(row[i])
        item: dict[str, Any] = {"feature": name, "text": TEMPLATES[name](ev, ctx, value)}
        observed = OBSERVED[name](ev) if name in OBSERVED else value
        item["value"] = _finite(observed)
        if name in BASELINE_KEYS:
            item["baseline"] = _finite(ctx.get(BASELINE_KEYS[name], math.nan))
        out.append(item)
    return out


COMBINATION = "an unusual combination of individually ordinary features"
NOVELTY_FIELDS = {
    "new_network": "network",
    "new_user_agent": "user_agent",
    "new_action": "action",
    "new_resource": "resource",
    "new_country": "country",
    "new_model": "model",
    "action_rarity": "action",
    "resource_rarity": "resource",
}


def _reported(name: str, ev: Event) -> bool:
    if name in OBSERVED:
        value = OBSERVED[name](ev)
        return bool(value == value)
    field = NOVELTY_FIELDS.get(name)
    return field is None or bool(getattr(ev, field))


def _finite(x: float) -> float | None:
    return float(x) if x == x and not math.isinf(x) else None
