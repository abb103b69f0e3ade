"""gm_agent's side of the peer benchmarks, run in this interpreter.

Every workload drives the real runtime a user's run goes through: the journal at
``<workspace>/.gm/journal.db`` opened with the workspace's settings (WAL,
``synchronous=FULL``), the job runner, and for kernel turns the kernel built by
:func:`gm_agent.kernel.kernel_for` (what ``gm run`` uses) with the built-in
tools. Only the model is a stand-in: :class:`gm_agent.llm.FunctionModel`
answering at once, so only the runtime is timed.

Two units are measured, because they do different amounts of durable work:

- a **job**: one side effect through :class:`gm_agent.jobs.JobRunner`, which
  commits ``job.intent`` before the effect and ``job.result`` after it (two
  commits), each event checked and folded and fenced by the run's lease as the
  kernel does. This is the unit a DBOS step or a LangGraph super-step records.
- a **kernel turn**: a model request (itself a job: intent, then response and
  result), one tool call (``tool.called``, ``tool.returned``), the checks the
  loop makes before each request (budgets, loop, context size) and a
  checkpoint every 10 turns: about four commits. In a DBOS or LangGraph agent
  the same turn is two steps (the LLM call and the tool call).
"""

from __future__ import annotations

import itertools
import sqlite3
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _peers._common import payload

from gm_agent.clock import SystemClock
from gm_agent.events import (
    AnyEventData,
    Event,
    RunStatusChanged,
    ToolCallData,
    new_event,
)
from gm_agent.jobs import JobOutcome, JobRunner, JobSpec, args_digest, idempotency_key
from gm_agent.journal import DEFAULT_LEASE_S, Journal, new_owner
from gm_agent.kernel import (
    Folder,
    RunState,
    check_moves,
    create_run,
    fold,
    kernel_for,
    parse_task,
)
from gm_agent.llm import Delta, FunctionModel, ModelRequest, Move
from gm_agent.settings import load_settings

__all__ = ["job_steps", "journal_bytes", "kernel_turns"]


class _Emitter:
    """Commits a run's events as the kernel's ``_emit`` does: checked against the
    run's status first (``check_moves``), committed under the run's lease, then
    folded into the run's live fold (a ``Folder``)."""

    def __init__(self, journal: Journal, run_id: str, owner: str, state: RunState) -> None:
        self._journal = journal
        self._clock = SystemClock()
        self._run_id = run_id
        self._owner = owner
        self._folder = Folder(state)

    @property
    def state(self) -> RunState:
        return self._folder.state

    async def emit(self, datas: Sequence[AnyEventData], blobs: Sequence[bytes] = ()) -> None:
        events = [
            new_event(
                self._clock,
                self._run_id,
                "job" if d.kind.startswith("job.") else "kernel",
                d,
            )
            for d in datas
        ]
        check_moves(self._folder.status, events)  # an illegal event raises before the commit
        for event in await self._journal.append(events, blobs, lease_owner=self._owner):
            self._folder.add(event)


async def job_steps(workspace: Path, steps: int, size: int) -> dict[str, float]:
    """Run ``steps`` jobs in a row, each returning ``size`` bytes, in a new run.

    Args:
        workspace: an empty directory; the journal goes to its ``.gm/journal.db``.
        steps: how many jobs.
        size: bytes of each job's output (over 4,096 it is also stored as a blob).

    Returns:
        ``ms_per_step``: wall milliseconds per job, timed around the loop of jobs
        only (``time.perf_counter``); ``bytes_on_disk``: the journal's size after
        its WAL is checkpointed (:func:`journal_bytes`).
    """
    settings = load_settings(workspace, {})
    clock = SystemClock()
    path = settings.journal_path
    async with await Journal.open(path, durability=settings.journal.durability) as journal:
        run_id = await create_run(
            journal,
            clock,
            parse_task("bench: one job per step"),
            model="bench:none",
            max_steps=steps,
            workspace=workspace,
        )
        owner = new_owner(clock.new_id())
        await journal.acquire_lease(run_id, owner, DEFAULT_LEASE_S)
        emitter = _Emitter(journal, run_id, owner, fold(await journal.read(run_id)))
        await emitter.emit([RunStatusChanged.between("created", "running")])
        runner = JobRunner(emitter.emit, clock)
        started = time.perf_counter()
        for step in range(1, steps + 1):
            args: dict[str, object] = {"step": step}
            spec = JobSpec(
                job_id=clock.new_id(),
                key=idempotency_key(run_id, step, 1, args_digest(args)),
                kind="bench",
                args={"step": step},
                idempotent=False,
            )
            output = payload(step, size)

            async def effect(output: str = output) -> JobOutcome:
                return JobOutcome(ok=True, output=output)

            await runner.run(spec, effect)
        elapsed = time.perf_counter() - started
        await journal.release_lease(run_id, owner)
    return {"ms_per_step": elapsed * 1000 / steps, "bytes_on_disk": journal_bytes(path)}


async def kernel_turns(workspace: Path, turns: int, size: int) -> dict[str, float]:
    """Drive a new run of ``turns`` kernel turns, then its finish, as ``gm run`` does.

    Each turn the stand-in model asks to ``read_file`` a file of ``size`` bytes
    (a different file each turn, so the loop check never stops the run, and each
    result is new state).

    Args:
        workspace: an empty directory, the run's workspace.
        turns: kernel turns before the model finishes.
        size: bytes of each turn's tool result.

    Returns:
        ``ms_per_step``: wall milliseconds per turn from the first model request
        to the last (the run's start-up and finish excluded), timed with
        ``time.perf_counter`` in the kernel's event observer; ``ms_first_tenth`` and
        ``ms_last_tenth``: the same over the first and last tenth of the turns (a
        per-turn cost that grows with the run shows here); ``bytes_on_disk``: the
        journal's size at the end (:func:`journal_bytes`).
    """
    data = workspace / "data"
    data.mkdir(parents=True)
    for turn in range(turns):
        (data / f"{turn:05d}.txt").write_text(payload(turn, size))
    environ: dict[str, str] = {}
    settings = load_settings(workspace, environ)
    clock = SystemClock()
    requests: list[float] = []  # perf_counter at each model request's job.intent

    async def model(request: ModelRequest) -> Move:
        turn = request.step - 1 if request.step is not None else 0
        if turn >= turns:
            finish = ToolCallData(call_id=f"c{turn}", name="finish", args={"summary": "done"})
            return Move(tool_calls=(finish,))
        read = ToolCallData(
            call_id=f"c{turn}", name="read_file", args={"path": f"data/{turn:05d}.txt"}
        )
        return Move(tool_calls=(read,))

    def observer(event: Event | Delta) -> None:
        if isinstance(event, Event) and event.kind == "job.intent":
            requests.append(time.perf_counter())

    path = settings.journal_path
    async with await Journal.open(path, durability=settings.journal.durability) as journal:
        run_id = await create_run(
            journal,
            clock,
            parse_task("bench: kernel turns"),
            model="bench:noop",
            max_steps=turns + 1,
            workspace=workspace,
        )
        kernel = kernel_for(
            journal, FunctionModel(model, name="bench:noop"), settings, clock, environ, observer
        )
        kernel.announce(await journal.read(run_id))
        outcome = await kernel.execute(run_id)
    if outcome.status != "succeeded":
        raise RuntimeError(f"the kernel-turn run ended {outcome.status}: {outcome.needs}")
    gaps = [b - a for a, b in itertools.pairwise(requests)]
    tenth = max(1, len(gaps) // 10)
    return {
        "ms_per_step": (requests[-1] - requests[0]) * 1000 / (len(requests) - 1),
        "ms_first_tenth": statistics.fmean(gaps[:tenth]) * 1000,
        "ms_last_tenth": statistics.fmean(gaps[-tenth:]) * 1000,
        "bytes_on_disk": journal_bytes(path),
    }


def journal_bytes(path: Path) -> int:
    """Bytes on disk of the SQLite file at ``path`` and its ``-wal``/``-shm``, after
    ``PRAGMA wal_checkpoint(TRUNCATE)`` (what every system's figure is taken after)."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return sum(
        Path(f"{path}{suffix}").stat().st_size
        for suffix in ("", "-wal", "-shm")
        if Path(f"{path}{suffix}").exists()
    )
