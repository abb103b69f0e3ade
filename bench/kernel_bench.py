"""Journal appends per second and the kernel's own overhead per step.

Run: ``python bench/kernel_bench.py [--quick]``. Prints a Markdown table. The
model is a function that answers instantly, so a step's time is the runtime's
own: building the request, journaling (five commits per step with
synchronous=FULL), and carrying out one cheap tool call. The machine's raw fsync
latency is measured in the same run because every durable figure rests on it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gm_agent.clock import SystemClock
from gm_agent.events import ToolCallData, UserMessage, new_event
from gm_agent.journal import Durability, Journal
from gm_agent.kernel import Kernel, create_run, parse_task
from gm_agent.llm import FunctionModel, ModelRequest, Move
from gm_agent.settings import load_settings
from gm_agent.tools import builtin_tools


def fsync_latency_ms(samples: int) -> float:
    with tempfile.NamedTemporaryFile(dir=Path.cwd()) as handle:
        timings = []
        for _ in range(samples):
            handle.write(b"x" * 512)
            handle.flush()
            start = time.perf_counter()
            os.fsync(handle.fileno())
            timings.append((time.perf_counter() - start) * 1000)
    return statistics.median(timings)


async def appends_per_second(durability: Durability, batch: int, events: int) -> float:
    clock = SystemClock()
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        async with await Journal.open(Path(tmp) / "journal.db", durability=durability) as journal:
            start = time.perf_counter()
            for _ in range(events // batch):
                await journal.append(
                    [
                        new_event(clock, "RUN", "user", UserMessage(text="x" * 100))
                        for _ in range(batch)
                    ]
                )
            return events / (time.perf_counter() - start)


async def ms_per_step(steps: int) -> float:
    async def model(request: ModelRequest) -> Move:
        turn = sum(1 for m in request.messages if m.role == "assistant")
        if turn >= steps:
            return Move(
                tool_calls=(
                    ToolCallData(call_id=f"c{turn}", name="finish", args={"summary": "done"}),
                )
            )
        return Move(
            tool_calls=(  # two files in turn: the same call 3 times over is a loop
                ToolCallData(
                    call_id=f"c{turn}", name="read_file", args={"path": f"f{turn % 2}.txt"}
                ),
            )
        )

    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        workspace = Path(tmp)
        (workspace / "f0.txt").write_text("hello\n")
        (workspace / "f1.txt").write_text("world\n")
        settings = load_settings(workspace, {})
        clock = SystemClock()
        async with await Journal.open(settings.journal_path) as journal:
            run_id = await create_run(
                journal,
                clock,
                parse_task("bench"),
                model="function",
                max_steps=steps + 1,
                workspace=workspace,
            )
            kernel = Kernel(
                journal, FunctionModel(model), builtin_tools(), settings, clock=clock, environ={}
            )
            start = time.perf_counter()
            outcome = await kernel.execute(run_id)
            elapsed = time.perf_counter() - start
    assert outcome.status == "succeeded", outcome
    return elapsed * 1000 / (steps + 1)


async def main(quick: bool) -> None:
    repeats = 3 if quick else 5
    events = 500 if quick else 2000
    steps = 30 if quick else 100
    rows: list[tuple[str, str]] = []
    rows.append(("fsync latency (median, ms)", f"{fsync_latency_ms(50 if quick else 200):.2f}"))
    for durability in ("full", "fast"):
        for batch in (1, 10):
            rates = [await appends_per_second(durability, batch, events) for _ in range(repeats)]  # type: ignore[arg-type]
            rows.append(
                (
                    f"journal appends/s, synchronous={'FULL' if durability == 'full' else 'NORMAL'}, {batch} per commit",
                    f"{statistics.median(rates):,.0f}",
                )
            )
    step_times = [await ms_per_step(steps) for _ in range(repeats)]
    rows.append(
        (
            f"kernel overhead per step (median of {repeats} runs of {steps} steps, ms)",
            f"{statistics.median(step_times):.2f}",
        )
    )
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    anyio.run(main, parser.parse_args().quick)
