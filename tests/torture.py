"""The torture harness: SIGKILL `gm` at random moments, resume, repeat, then audit.

A scripted task alternates shell steps (each appends its own line to
``ledger.txt``) with file writes. The harness starts ``gm run``, kills the
process with SIGKILL after a random delay, starts ``gm resume last``, kills
again, and so on until the run finishes; scenario after scenario until it has
killed enough times. It then audits every scenario's journal and files:

- every event parses and ``seq`` runs 1..n without a gap;
- a shell job with a recorded result has its ledger line exactly once;
- an ambiguous shell job has its line at most once (and a ``job.ambiguous``);
- no call is lost: every call of the script got a ``tool.returned``;
- the written files equal those of an uninterrupted run, and so does the ledger
  except for lines of ambiguous jobs that never ran;
- ``gm undo`` then restores the workspace to exactly what it was before the run:
  every byte the run changed, killed commands included, was covered by a patch.

Used by ``tests/test_torture.py`` (CI, at least 30 kills) and by
``bench/torture_bench.py`` (300 kills).
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import yaml

from gm_agent.events import Event, JobAmbiguous, JobIntent, JobResult, RunFinished, ToolReturned
from gm_agent.journal import Journal
from gm_agent.kernel import fold, replay_run


@dataclass
class TortureReport:
    """What the harness did and found. A sound runtime has every list empty and no duplicates."""

    scenarios: int = 0
    kills: int = 0
    processes: int = 0
    ambiguous: int = 0
    ambiguous_not_run: int = 0
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)


def script(steps: int) -> list[dict[str, Any]]:
    moves: list[dict[str, Any]] = []
    for i in range(1, steps + 1):
        if i % 2:
            call = {"name": "run_shell", "args": {"command": f"echo step-{i} >> ledger.txt"}}
        else:
            call = {
                "name": "write_file",
                "args": {"path": f"files/f{i}.txt", "content": f"content {i}\n"},
            }
        moves.append({"tool_calls": [call]})
    moves.append({"finish": "all steps done"})
    return moves


def _stderr(workspace: Path) -> Path:
    return workspace.parent / f"{workspace.name}.stderr"  # outside: not a workspace change


def _gm(*args: str, cwd: Path) -> subprocess.Popen[bytes]:
    with open(_stderr(cwd), "ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "gm_agent", *args],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def _prepare(workspace: Path, steps: int) -> None:
    workspace.mkdir(parents=True)
    (workspace / "moves.yaml").write_text(yaml.safe_dump(script(steps)))
    (workspace / "task.md").write_text("---\nmodel: scripted:moves.yaml\n---\nDo every step.\n")
    # Checkpoints often, so kills land around them and resumes start from them.
    (workspace / "gm.toml").write_text("[checkpoint]\nevery_steps = 2\n")


def _run_status(workspace: Path) -> str | None:
    """The run's status from the journal, or None when no run was recorded yet."""
    path = workspace / ".gm" / "journal.db"
    if not path.exists():
        return None
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            row = conn.execute("SELECT status FROM runs").fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else str(row[0])


def _progress(workspace: Path) -> int:
    """The seq of the run's last event that is more than a process taking it over."""
    path = workspace / ".gm" / "journal.db"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            row = conn.execute(
                "SELECT max(seq) FROM events WHERE kind NOT IN ('run.resumed', 'sandbox.probed')"
            ).fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0] or 0)


def _files(workspace: Path) -> dict[str, bytes]:
    root = workspace / "files"
    return {p.name: p.read_bytes() for p in sorted(root.glob("*"))} if root.exists() else {}


def _ledger(workspace: Path) -> list[str]:
    path = workspace / "ledger.txt"
    return path.read_text().splitlines() if path.exists() else []


def _interrupt_until_done(
    workspace: Path, rng: random.Random, max_delay_s: float, report: TortureReport
) -> str:
    """Start, kill, resume... until the run ends; its final status.

    Kills land at a uniform random time in a window of ``max_delay_s``. On a
    slow or busy machine a process may need longer than that just to start and
    take the run over; the window then widens by a quarter for each kill that
    left no progress (only ``run.resumed``/``sandbox.probed`` events), and
    narrows back once a process gets further, so the kills keep landing all
    along the run instead of only in start-up.
    """
    window = max_delay_s
    for _ in range(1000):
        status = _run_status(workspace)
        if status in ("succeeded", "failed", "cancelled"):
            return status
        command = ("run", "task.md") if status is None else ("resume", "last")
        before = _progress(workspace)
        process = _gm(*command, cwd=workspace)
        report.processes += 1
        try:
            code = process.wait(timeout=rng.uniform(0.0, window))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            report.kills += 1
            stuck = _progress(workspace) == before
            window = min(window * 1.25, 10.0) if stuck else max_delay_s
            continue
        if code != 0 and _run_status(workspace) not in ("succeeded", "failed", "cancelled"):
            tail = _stderr(workspace).read_text().strip().splitlines()[-1:]
            report.problems.append(
                f"{workspace.name}: `gm {' '.join(command)}` exited {code}: {tail}"
            )
    raise AssertionError(f"{workspace}: the run did not finish after 1000 processes")


def _audit(workspace: Path, baseline: Path, report: TortureReport) -> None:
    where = workspace.name
    events = anyio.run(_read_journal, workspace)
    try:
        fold(events)  # the journal must replay: no illegal transition, no stale write
    except Exception as exc:
        report.problems.append(f"{where}: the journal does not fold: {exc}")
    for problem in anyio.run(_replay_problems, workspace):
        report.problems.append(f"{where}: replay: {problem}")
    if [e.seq for e in events] != list(range(1, len(events) + 1)):
        report.problems.append(f"{where}: seqs have gaps")
    finished = [e.data for e in events if isinstance(e.data, RunFinished)]
    if [f.status for f in finished] != ["succeeded"]:
        report.problems.append(f"{where}: the run did not succeed once: {finished}")
    intents = {
        e.data.job_id: e.data
        for e in events
        if isinstance(e.data, JobIntent) and e.data.job_kind == "shell"
    }
    results = {e.data.job_id for e in events if isinstance(e.data, JobResult)}
    ambiguous = {e.data.job_id for e in events if isinstance(e.data, JobAmbiguous)}
    lines = Counter(_ledger(workspace))
    missing: set[str] = set()
    for job_id, intent in intents.items():
        line = str(intent.args["command"]).split()[1]
        count = lines[line]
        if count > 1:
            report.duplicates += count - 1
            report.problems.append(f"{where}: {line} appears {count} times")
        if job_id in results and count != 1:
            report.problems.append(f"{where}: {line} has a result but appears {count} times")
        if job_id in ambiguous:
            report.ambiguous += 1
            if count == 0:
                report.ambiguous_not_run += 1
                missing.add(line)
        if job_id not in results and job_id not in ambiguous:
            report.problems.append(f"{where}: shell job {job_id} has neither result nor ambiguous")
    returned = {e.data.call_id for e in events if isinstance(e.data, ToolReturned)}
    expected_calls = {f"call_{i}_1" for i in range(1, len(script(_steps(baseline))) + 1)}
    if expected_calls - returned:
        report.problems.append(
            f"{where}: calls without a result: {sorted(expected_calls - returned)}"
        )
    if _files(workspace) != _files(baseline):
        report.problems.append(f"{where}: written files differ from the uninterrupted run")
    expected_ledger = [line for line in _ledger(baseline) if line not in missing]
    if sorted(lines.elements()) != sorted(expected_ledger):
        report.problems.append(f"{where}: ledger {sorted(lines.elements())} != {expected_ledger}")
    undo = _gm("undo", "last", cwd=workspace).wait(timeout=120)
    left = sorted(
        p.relative_to(workspace).as_posix()
        for p in workspace.rglob("*")
        if p.is_file() and ".gm" not in p.parts
    )
    if undo != 0 or left != ["gm.toml", "moves.yaml", "task.md"]:
        report.problems.append(f"{where}: after gm undo (exit {undo}) the workspace holds {left}")


async def _replay_problems(workspace: Path) -> list[str]:
    """What `gm replay` finds wrong with the run: digests, fold, checkpoint hashes."""
    async with await Journal.open(workspace / ".gm" / "journal.db", read_only=True) as journal:
        (run,) = await journal.list_runs()
        report = await replay_run(journal, run.run_id)
    return [f"seq {p.seq}: {p.message}" for p in report.problems]


async def _read_journal(workspace: Path) -> list[Event]:
    """Every event, parsed (a row that does not parse raises JournalCorrupt)."""
    async with await Journal.open(workspace / ".gm" / "journal.db", read_only=True) as journal:
        return await journal.read()


def _steps(baseline: Path) -> int:
    return len(yaml.safe_load((baseline / "moves.yaml").read_text())) - 1


def torture(
    root: Path, *, kills: int, seed: int = 0, steps: int = 10, max_delay_s: float = 0.45
) -> TortureReport:
    """Kill and resume runs until at least ``kills`` SIGKILLs have landed; audit each run."""
    rng = random.Random(seed)
    baseline = root / "baseline"
    _prepare(baseline, steps)
    assert _gm("run", "task.md", cwd=baseline).wait(timeout=120) == 0
    report = TortureReport()
    while report.kills < kills:
        report.scenarios += 1
        workspace = root / f"scenario-{report.scenarios}"
        _prepare(workspace, steps)
        _interrupt_until_done(workspace, rng, max_delay_s, report)
        _audit(workspace, baseline, report)
    return report
