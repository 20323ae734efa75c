"""One report section: a title, a table and notes; a failing section becomes a row saying why."""

from __future__ import annotations

import math
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Section:
    title: str
    columns: tuple[str, ...]
    rows: list[list[str]] = field(default_factory=list)
    intro: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add_row(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def unavailable(self, what: str, exc: BaseException) -> None:
        """A row saying what could not be measured and why; other rows stay."""
        why = f"unavailable — {type(exc).__name__}: {str(exc)[:200]}".replace("|", "/")
        self.add_row(what, why, *["—"] * (len(self.columns) - 2))
        print(f"[bench] {self.title}: {what}: {why}", file=sys.stderr)
        traceback.print_exception(exc, file=sys.stderr)

    def markdown(self) -> list[str]:
        out = [f"## {self.title}", ""]
        if self.intro:
            out += [*self.intro, ""]
        out += ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        out += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.notes:
            out += ["", *self.notes]
        out += ["", f"_Section time: {self.seconds:.0f} s._", ""]
        return out


def run_section(section: Section, body: Callable[[Section], None]) -> Section:
    """Fill ``section`` with ``body``; an exception it lets out becomes the last row."""
    started = time.perf_counter()
    try:
        body(section)
    except Exception as exc:  # one broken section must not lose the others' numbers
        section.unavailable("(whole section)", exc)
    section.seconds = time.perf_counter() - started
    print(f"[bench] {section.title}: {section.seconds:.0f} s", file=sys.stderr)
    return section


def num(value: float, digits: int = 0) -> str:
    """Thousands-separated fixed point; an em dash for NaN.

    >>> num(12345.678), num(0.01234, 3), num(float("nan"))
    ('12,346', '0.012', '—')
    """
    return "—" if math.isnan(value) else f"{value:,.{digits}f}"
