"""What both peer workload scripts share: the ledger, timing and the JSON answer.

This module runs inside the peers' own virtual environment (``bench/.venv-peers``),
never in gm_agent's: it imports only the standard library.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any


def append_ledger(ledger: Path, line: str) -> None:
    """Append ``line`` to the ledger and fsync it before returning.

    The ledger is how the harness counts side effects: a line that appears twice
    is a side effect carried out twice. It is written by the side effect itself,
    so a line exists exactly when the effect happened.
    """
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def payload(step: int, size: int) -> str:
    """A step's result text: ``size`` bytes (ASCII) that differ from step to step,
    so no layer can store a repeated value once."""
    seed = f"{step:08d}"
    return (seed * (size // len(seed) + 1))[:size]


def sqlite_bytes(*paths: Path) -> int:
    """Bytes on disk of SQLite files, with their ``-wal``, ``-shm`` and ``-journal``."""
    total = 0
    for path in paths:
        for suffix in ("", "-wal", "-shm", "-journal"):
            candidate = Path(f"{path}{suffix}")
            if candidate.exists():
                total += candidate.stat().st_size
    return total


def answer(result: dict[str, Any]) -> None:
    """Print the workload's result as one JSON line, the last line of stdout."""
    print(json.dumps(result), flush=True)


def parser(description: str) -> argparse.ArgumentParser:
    """The command line every peer script takes (one workload per process)."""
    cli = argparse.ArgumentParser(description=description)
    cli.add_argument("workload", choices=("steps", "growth", "crash"))
    cli.add_argument("--dir", type=Path, required=True, help="scratch directory (exists)")
    cli.add_argument("--steps", type=int, default=500)
    cli.add_argument("--bytes", type=int, default=64, help="bytes of each step's result")
    cli.add_argument("--journal-mode", choices=("default", "wal"), default="default")
    cli.add_argument("--state", choices=("append", "replace"), default="append")
    cli.add_argument("--work-s", type=float, default=0.02, help="seconds a crash step works")
    cli.add_argument("--resume", action="store_true", help="crash: resume, not start")
    return cli


def now() -> float:
    """Seconds on the monotonic clock (``time.perf_counter``)."""
    return time.perf_counter()
