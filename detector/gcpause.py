"""Pausing the cyclic garbage collector around batch work.

A batch of events is thousands of acyclic objects (JSON values, Events, rows) that live
until the batch is done and are then freed by reference counting. Every 700 of them the
cyclic collector would otherwise rescan the young ones, and every few scans all of
them: about a third of the parse time, for nothing it can ever free.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the block with the cyclic collector off (no-op if it is already off)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
