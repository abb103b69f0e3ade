"""Replay speed, recovery with and without checkpoints, and journal bytes per step.

Run: ``python bench/replay_bench.py [--quick]``. Prints a Markdown table.

- Replay: a synthetic run of 10,000 and 100,000 events (five per step: the model
  job, its response, the tool call and its result) is read from the journal and
  folded; events per second for the read and fold together, for the fold alone,
  and for ``gm replay``'s whole check (digests, fold, checkpoints).
- Recovery: loading the state of a long run as the kernel does on resume, from
  its newest checkpoint plus the tail, against folding every event.
- Bytes per step: a real kernel run whose every step writes a file of 1 KB (then
  10 KB) through ``write_file``, checkpointing every 10 steps. The journal's
  bytes per step over the second and the last quarter of the run show whether
  storage grows with the run; the bytes a checkpointer copying the whole state at
  each checkpoint would have written are shown beside them.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
from pydantic import JsonValue

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gm_agent.clock import SystemClock
from gm_agent.events import (
    AnyEventData,
    JobIntent,
    JobResult,
    ModelResponse,
    RunCreated,
    RunStatusChanged,
    ToolCallData,
    ToolCalled,
    ToolReturned,
    UserMessage,
    new_event,
)
from gm_agent.journal import Journal
from gm_agent.kernel import Kernel, create_run, fold, load_state, parse_task, replay_run
from gm_agent.kernel._checkpoint import encode_state
from gm_agent.llm import FunctionModel, ModelRequest, Move
from gm_agent.settings import CheckpointSettings, load_settings
from gm_agent.tools import builtin_tools


def _step(n: int) -> list[AnyEventData]:
    call = ToolCallData(call_id=f"c{n}", name="read_file", args={"path": "a.txt"})
    return [
        JobIntent(job_id=f"m{n}", key=f"k{n}", job_kind="model", args_digest="d", idempotent=True),
        ModelResponse(job_id=f"m{n}", model="m", text="reading", tool_calls=(call,)),
        JobResult(job_id=f"m{n}", key=f"k{n}", job_kind="model", ok=True),
        ToolCalled(call_id=f"c{n}", name="read_file", args={"path": "a.txt"}),
        ToolReturned(call_id=f"c{n}", name="read_file", ok=True, output="x" * 200),
    ]


async def _synthetic_run(journal: Journal, events: int) -> str:
    clock = SystemClock()
    run_id = clock.new_id()
    datas: list[AnyEventData] = [
        RunCreated(task="t", model="m", max_steps=10**9, workspace="/w"),
        UserMessage(text="go"),
        RunStatusChanged.between("created", "running"),
    ]
    step = 0
    while len(datas) < events:
        step += 1
        datas += _step(step)
    batch = [new_event(clock, run_id, "kernel", d) for d in datas[:events]]
    for start in range(0, len(batch), 5000):
        await journal.append(batch[start : start + 5000])
    return run_id


async def replay_rates(events: int) -> tuple[float, float, float]:
    """(events/s read and folded, events/s folded, events/s through all of `gm replay`'s
    checks) for a run of ``events`` events."""
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        async with await Journal.open(Path(tmp) / "journal.db", durability="fast") as journal:
            run_id = await _synthetic_run(journal, events)
            start = time.perf_counter()
            read = await journal.read(run_id)
            folded_at = time.perf_counter()
            fold(read)
            end = time.perf_counter()
            report = await replay_run(journal, run_id)
            replayed = time.perf_counter()
    assert report.ok, report.problems
    return events / (end - start), events / (end - folded_at), events / (replayed - end)


async def recovery_ms(events: int) -> tuple[float, float]:
    """(ms to load a long run's state from its checkpoint + tail, ms by folding all)."""
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        async with await Journal.open(Path(tmp) / "journal.db", durability="fast") as journal:
            run_id = await _synthetic_run(journal, events)
            state = fold(await journal.read(run_id))
            encoded = encode_state(state)
            await journal.append(
                [new_event(SystemClock(), run_id, "user", UserMessage(text="tail"))],
                encoded.nodes.values(),
                checkpoint=encoded.record(run_id, state.last_seq),
            )
            start = time.perf_counter()
            from_checkpoint, _ = await load_state(journal, run_id)
            middle = time.perf_counter()
            folded = fold(await journal.read(run_id))
            end = time.perf_counter()
    assert from_checkpoint.canonical_json() == folded.canonical_json()
    return (middle - start) * 1000, (end - middle) * 1000


async def bytes_per_step(steps: int, change: int) -> tuple[float, float, float]:
    """Journal bytes per step over the second and last quarter of a ``steps``-step run
    writing ``change`` bytes per step, and the bytes per step a whole-state copy per
    checkpoint would have added over the last quarter."""
    sizes: list[int] = []  # the journal's bytes before each model request

    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        workspace = Path(tmp)
        settings = load_settings(workspace, {}).model_copy(
            update={"checkpoint": CheckpointSettings(every_steps=10, every_s=3600)}
        )
        path = settings.journal_path

        async def model(request: ModelRequest) -> Move:
            turn = sum(1 for m in request.messages if m.role == "assistant")
            sizes.append(_journal_bytes(path))
            if turn >= steps:
                return Move(
                    tool_calls=(ToolCallData(call_id="end", name="finish", args={"summary": "ok"}),)
                )
            content = f"{turn:08d}" * (change // 8)
            args: dict[str, JsonValue] = {"path": f"f{turn % 50}.txt", "content": content}
            return Move(
                tool_calls=(ToolCallData(call_id=f"c{turn}", name="write_file", args=args),)
            )

        clock = SystemClock()
        async with await Journal.open(path, durability="fast") as journal:
            run_id = await create_run(
                journal,
                clock,
                parse_task("bench"),
                model="f",
                max_steps=steps + 1,
                workspace=workspace,
            )
            kernel = Kernel(
                journal,
                FunctionModel(model),
                builtin_tools(),
                settings,
                clock=clock,
                environ={},
                heartbeat=False,
            )
            await kernel.execute(run_id)
            final, _ = await load_state(journal, run_id)
    quarter = steps // 4  # the second quarter against the last (the first holds the schema)
    first = (sizes[2 * quarter] - sizes[quarter]) / quarter
    last = (sizes[-1] - sizes[-1 - quarter]) / quarter
    whole_state = len(final.canonical_json())
    # A copying checkpointer stores the whole state every 10 steps: late in the run,
    # that is about the final state's size per 10 steps.
    return first, last, whole_state / 10


def _journal_bytes(path: Path) -> int:
    """The journal's size once its WAL is copied back: pages in use times page size."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        (free,) = conn.execute("PRAGMA freelist_count").fetchone()
        (size,) = conn.execute("PRAGMA page_size").fetchone()
    return int((pages - free) * size)


async def main(quick: bool) -> None:
    repeats = 3 if quick else 5
    rows: list[tuple[str, str]] = []
    for events in (10_000, 100_000):
        rates = [await replay_rates(events) for _ in range(repeats)]
        read_fold = statistics.median(r[0] for r in rates)
        fold_only = statistics.median(r[1] for r in rates)
        checked = statistics.median(r[2] for r in rates)
        rows.append((f"replay, {events:,} events: read + fold (events/s)", f"{read_fold:,.0f}"))
        rows.append((f"replay, {events:,} events: fold only (events/s)", f"{fold_only:,.0f}"))
        rows.append(
            (
                f"replay, {events:,} events: `gm replay` with all its checks (events/s)",
                f"{checked:,.0f}",
            )
        )
    for events in (10_000, 50_000):
        timings = [await recovery_ms(events) for _ in range(repeats)]
        with_cp = statistics.median(t[0] for t in timings)
        without = statistics.median(t[1] for t in timings)
        rows.append(
            (
                f"load a {events:,}-event run: from checkpoint + tail / fold all (ms)",
                f"{with_cp:.0f} / {without:.0f} ({without / with_cp:.1f}x)",
            )
        )
    steps = 120 if quick else 400
    for change in (1024, 10 * 1024):
        first, last, copying = await bytes_per_step(steps, change)
        rows.append(
            (
                f"journal bytes per step, {change // 1024} KB written per step, {steps} steps: "
                "2nd quarter / last quarter / a whole-state copy every 10 steps, late",
                f"{first:,.0f} / {last:,.0f} / {copying:,.0f}",
            )
        )
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, shorter runs")
    anyio.run(main, parser.parse_args().quick)
