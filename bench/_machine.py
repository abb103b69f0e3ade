"""The machine under the figures: raw fsync latency of the disk, and facts to quote.

Every durable figure rests on how long the disk takes to make a write durable,
so it is measured in the same run, in the same directory the workloads use.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["fsync_latency", "machine_facts"]


def fsync_latency(directory: Path, samples: int) -> dict[str, float]:
    """Time ``os.fsync`` after appending 512 bytes to a file in ``directory``.

    Args:
        directory: where the workloads write (same filesystem).
        samples: how many fsyncs.

    Returns:
        ``median_ms``, ``p99_ms`` (nearest-rank), ``max_ms`` and ``samples``; times are
        ``time.perf_counter`` around the ``os.fsync`` call alone.
    """
    timings: list[float] = []
    with tempfile.NamedTemporaryFile(dir=directory) as handle:
        for _ in range(samples):
            handle.write(b"x" * 512)
            handle.flush()
            start = time.perf_counter()
            os.fsync(handle.fileno())
            timings.append((time.perf_counter() - start) * 1000)
    timings.sort()
    return {
        "median_ms": statistics.median(timings),
        "p99_ms": timings[min(len(timings) - 1, max(0, round(0.99 * len(timings)) - 1))],
        "max_ms": timings[-1],
        "samples": float(samples),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _filesystem(directory: Path) -> str:
    """The type of the filesystem holding ``directory`` (longest mount prefix)."""
    try:
        mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "unknown"
    target = str(directory.resolve())
    best = ("", "unknown")
    for fields in mounts:
        point, kind = fields[1], fields[2]
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, kind)
    return f"{best[1]} (mounted at {best[0]})"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_facts(directory: Path, peer_versions: dict[str, str]) -> dict[str, Any]:
    """What a reader needs to place the figures: CPU, cores, memory, kernel, the
    filesystem the workloads wrote to, Python, SQLite and package versions
    (``peer_versions`` as the peers' interpreter reported them)."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "filesystem": _filesystem(directory),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "gm-agent": _version("gm-agent"),
        **peer_versions,
    }
