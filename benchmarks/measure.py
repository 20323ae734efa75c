"""Memory and machine measurements for the benchmark report (Linux /proc, no psutil)."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

PROC_SELF = Path("/proc/self")
REPORTED_PACKAGES = (
    "numpy",
    "scikit-learn",
    "river",
    "krcf",
    "pysad",
    "capymoa",
    "isotree",
)


def _status_kib(field: str) -> int:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM), or 0 if unreadable."""
    try:
        for line in (PROC_SELF / "status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def reset_rss_peak() -> int:
    """Reset the process's peak RSS (VmHWM) and return the current RSS in KiB.

    Writing "5" to clear_refs resets VmHWM to the current RSS (Linux >= 4.0);
    if that is not allowed the later peak is still a valid upper bound.
    """
    with contextlib.suppress(OSError):
        (PROC_SELF / "clear_refs").write_text("5")
    return _status_kib("VmRSS")


def rss_peak_kib() -> int:
    """Peak resident set size since the last reset, KiB."""
    return _status_kib("VmHWM")


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or the platform's guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_facts() -> dict[str, str]:
    """Machine, date and versions, as label -> value, for the report header."""
    facts = {
        "date (UTC)": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "CPU": cpu_model(),
        "cores": str(os.cpu_count()),
        "OS": platform.platform(),
        "Python": sys.version.split()[0],
    }
    for name in REPORTED_PACKAGES:
        facts[name] = package_version(name)
    return facts
