"""Memory and machine measurements for the benchmark report (Linux /proc, no psutil)."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

PROC_SELF = Path("/proc/self")
REPORTED_PACKAGES = (
    "numpy",
    "scikit-learn",
    "river",
    "numba",
    "krcf",
    "pysad",
    "capymoa",
    "isotree",
    "kafka-python",
    "confluent-kafka",
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


def ram_gib() -> str:
    """Total memory from /proc/meminfo, GiB."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def rss_kib() -> int:
    """Current resident set size, KiB."""
    return _status_kib("VmRSS")


def process_age_s() -> float:
    """Seconds since this process started (interpreter start-up and imports included)."""
    try:
        stat = (PROC_SELF / "stat").read_text()
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22: starttime
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    return max(uptime - start_ticks / os.sysconf("SC_CLK_TCK"), 0.0)


def load_average() -> str:
    """1/5/15-minute load averages: other work on the machine skews every rate."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def source_revision() -> str:
    """The commit the benchmark ran, "+ changes" if the work tree differed from it."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
        )
    except OSError:
        return "unknown (no git)"
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    return head.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


def machine_facts() -> dict[str, str]:
    """Machine, date and versions, as label -> value, for the report header."""
    facts = {
        "date (UTC)": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "CPU": cpu_model(),
        "cores": str(os.cpu_count()),
        "RAM": ram_gib(),
        "load average at start": load_average(),
        "OS": platform.platform(),
        "Python": sys.version.split()[0],
        "auditwatch commit": source_revision(),
    }
    for name in REPORTED_PACKAGES:
        facts[name] = package_version(name)
    return facts
