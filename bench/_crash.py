"""Crash and resume: SIGKILL a 20-step run at a random point, restart it, audit a ledger.

Every system runs the same run: 20 steps, each of which appends its own line
(``step-N``) to ``ledger.txt`` and fsyncs it (the side effect writes the ledger
itself, so a line exists exactly when the effect happened), then works
``WORK_S`` seconds before its result is recorded, as a tool call does after its
effect. The harness starts the run, waits for the first ledger line, sleeps a
uniform random time within the span the run's side effects took in an
uncrashed run of the same system, sends SIGKILL, and starts the system's own
resume. It measures:

- ``resume_ms``: from starting the resuming process to the first new ledger line
  (the first new step's side effect), polled every millisecond (the ledger is
  counted :data:`SETTLE_S` after the kill, so a command the killed process left
  running is not taken for the resumed process's step);
- ``fresh_ms``: the same from starting the first process (a fresh start);
- ``duplicates``: ledger lines beyond the first of each step (effects repeated);
- ``ambiguous``: steps the system reported as "outcome unknown" instead of
  repeating them (gm_agent's ``job.ambiguous``; the peers have no such report);
- ``missing``: steps whose effect never happened (an ambiguous step that had not
  run when killed is not run again: a reported gap, not a silent one).

For gm_agent the run is ``gm run task.md`` with a scripted model whose moves call
``run_shell`` (``echo step-N >> ledger.txt && sync ledger.txt && sleep WORK_S``,
sandboxed, as a user's command runs) and the resume is ``gm resume last``.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["STEPS", "WORK_S", "Contender", "CrashTrial", "crash_trials", "gm_contender"]

STEPS = 20
WORK_S = 0.02
"""Seconds each step works after its side effect, before its result is recorded."""
POLL_S = 0.001
TIMEOUT_S = 120.0
SETTLE_S = 0.3
"""Seconds waited after the kill before the ledger is counted: a command the killed
process had started (gm_agent's sandboxed shell is its own process group and
outlives it, as it would for a user) may still finish its line."""


@dataclass(frozen=True)
class Contender:
    """A system under the crash test.

    Attributes:
        name: the system's label in the results.
        command: ``command(workdir, resume)``: the argv that starts (or resumes) the run.
        prepare: writes what the run needs into a new, empty ``workdir``.
        ambiguous: how many steps the system reported as of unknown outcome.
        environ: variables the command gets besides ``PATH`` and ``HOME``.
    """

    name: str
    command: Callable[[Path, bool], list[str]]
    prepare: Callable[[Path], None] = lambda workdir: None
    ambiguous: Callable[[Path], int] = lambda workdir: 0
    environ: Mapping[str, str] = field(default_factory=dict[str, str])


@dataclass(frozen=True)
class CrashTrial:
    """One kill and resume; times in milliseconds (``None``: no new step followed)."""

    system: str
    killed_after_steps: int
    fresh_ms: float
    resume_ms: float | None
    duplicates: int
    ambiguous: int
    missing: int
    resumed_exit: int

    def as_json(self) -> dict[str, Any]:
        """The trial as a JSON-safe dict."""
        return asdict(self)


def gm_contender(gm: list[str], environ: Mapping[str, str]) -> Contender:
    """gm_agent under the crash test; ``gm`` is the argv prefix of the ``gm`` command,
    ``environ`` what it runs with (see ``_startup.gm_environ``)."""

    def prepare(workdir: Path) -> None:
        moves: list[dict[str, Any]] = [
            {
                "tool_calls": [
                    {
                        "name": "run_shell",
                        "args": {
                            "command": f"echo step-{n} >> ledger.txt && sync ledger.txt "
                            f"&& sleep {WORK_S}"
                        },
                    }
                ]
            }
            for n in range(1, STEPS + 1)
        ]
        moves.append({"finish": "all steps done"})
        (workdir / "moves.yaml").write_text(yaml.safe_dump(moves))
        (workdir / "task.md").write_text("---\nmodel: scripted:moves.yaml\n---\nDo every step.\n")

    def command(workdir: Path, resume: bool) -> list[str]:
        del workdir
        return [*gm, "resume", "last"] if resume else [*gm, "run", "task.md"]

    def ambiguous(workdir: Path) -> int:
        journal = workdir / ".gm" / "journal.db"
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as conn:
            row = conn.execute("SELECT count(*) FROM events WHERE kind = 'job.ambiguous'")
            count = int(row.fetchone()[0])
        conn.close()
        return count

    return Contender("gm_agent", command, prepare, ambiguous, environ)


def _lines(ledger: Path) -> list[str]:
    return ledger.read_text().splitlines() if ledger.exists() else []


def _wait_lines(ledger: Path, more_than: int, process: subprocess.Popen[bytes]) -> float | None:
    """``perf_counter`` when the ledger first holds more than ``more_than`` lines;
    ``None`` if ``process`` ends (or ``TIMEOUT_S`` passes) first."""
    deadline = time.perf_counter() + TIMEOUT_S
    while time.perf_counter() < deadline:
        if len(_lines(ledger)) > more_than:
            return time.perf_counter()
        if process.poll() is not None:
            return time.perf_counter() if len(_lines(ledger)) > more_than else None
        time.sleep(POLL_S)
    return None


def _start(contender: Contender, workdir: Path, resume: bool) -> subprocess.Popen[bytes]:
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), **contender.environ}
    with open(workdir.parent / f"{workdir.name}.stderr", "ab") as stderr:
        return subprocess.Popen(
            contender.command(workdir, resume),
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def effects_span_s(contender: Contender, workdir: Path) -> tuple[float, float]:
    """Run ``contender`` once uncrashed in ``workdir``; (seconds from the first to the
    last ledger line, ms from process start to the first line).

    Raises:
        RuntimeError: the run failed or did not write every step once.
    """
    workdir.mkdir(parents=True)
    contender.prepare(workdir)
    ledger = workdir / "ledger.txt"
    started = time.perf_counter()
    process = _start(contender, workdir, resume=False)
    first = _wait_lines(ledger, 0, process)
    last = _wait_lines(ledger, STEPS - 1, process)
    code = process.wait(timeout=TIMEOUT_S)
    if first is None or last is None or code != 0 or len(_lines(ledger)) != STEPS:
        raise RuntimeError(f"{contender.name}: an uncrashed run failed (exit {code}) in {workdir}")
    return last - first, (first - started) * 1000


def crash_trial(
    contender: Contender, workdir: Path, span_s: float, rng: random.Random
) -> CrashTrial | None:
    """Start, kill at a random point, resume, audit; ``None`` if the run ended before
    the kill landed (the caller tries again)."""
    workdir.mkdir(parents=True)
    contender.prepare(workdir)
    ledger = workdir / "ledger.txt"
    started = time.perf_counter()
    process = _start(contender, workdir, resume=False)
    first = _wait_lines(ledger, 0, process)
    if first is None:
        raise RuntimeError(f"{contender.name}: the run wrote no step in {workdir}")
    time.sleep(max(0.0, first + rng.uniform(0.0, span_s) - time.perf_counter()))
    if process.poll() is not None:
        return None
    process.kill()
    process.wait()
    time.sleep(SETTLE_S)
    before = len(_lines(ledger))
    resumed_at = time.perf_counter()
    resumed = _start(contender, workdir, resume=True)
    new_step = _wait_lines(ledger, before, resumed)
    code = resumed.wait(timeout=TIMEOUT_S)
    lines = _lines(ledger)
    counts = Counter(lines)
    return CrashTrial(
        system=contender.name,
        killed_after_steps=before,
        fresh_ms=(first - started) * 1000,
        resume_ms=None if new_step is None else (new_step - resumed_at) * 1000,
        duplicates=sum(n - 1 for n in counts.values()),
        ambiguous=contender.ambiguous(workdir),
        missing=sum(1 for n in range(1, STEPS + 1) if f"step-{n}" not in counts),
        resumed_exit=code,
    )


def crash_trials(
    contenders: list[Contender], root: Path, kills: int, seed: int
) -> dict[str, list[CrashTrial]]:
    """``kills`` landed kills per contender, the contenders taking turns.

    Args:
        contenders: the systems.
        root: an empty scratch directory.
        kills: kills that must land per system (a kill after the run ended is retried,
            up to three times as many attempts).
        seed: seeds the kill times, so a run of the harness can be repeated.

    Returns:
        Each system's trials, in order.
    """
    rng = random.Random(seed)
    spans = {c.name: effects_span_s(c, root / f"{c.name}-uncrashed")[0] for c in contenders}
    trials: dict[str, list[CrashTrial]] = {c.name: [] for c in contenders}
    for attempt in range(kills * 3):
        pending = [c for c in contenders if len(trials[c.name]) < kills]
        if not pending:
            break
        for contender in pending:
            workdir = root / f"{contender.name}-{attempt}"
            trial = crash_trial(contender, workdir, spans[contender.name], rng)
            if trial is not None:
                trials[contender.name].append(trial)
    return trials
