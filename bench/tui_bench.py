"""The TUI: how fast a new event reaches the screen, and its memory with a long run open.

Run: ``python bench/tui_bench.py [--quick]``. Prints a Markdown table:

- event to screen: another connection appends a ``user.message`` to a run open in
  the TUI (headless, Textual's test driver); the time until the run view has
  drawn it, median and worst of 30 (10 with ``--quick``), in ms. The TUI polls
  the journal every 100 ms, so about 50 ms is expected.
- memory: the process's resident memory before opening the TUI and once a run of
  100,000 events (20,000 with ``--quick``) is open and drawn, in MB.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from replay_bench import _synthetic_run

from gm_agent.clock import SystemClock
from gm_agent.events import UserMessage, new_event
from gm_agent.journal import Journal
from gm_agent.tui import GmApp
from gm_agent.tui.app import RunScreen


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _until(check: object) -> None:
    with anyio.fail_after(120):
        while True:  # polling is the point: what is measured is when the screen has it
            if check():  # type: ignore[operator]
                return
            await anyio.sleep(0.001)


async def latency_ms(root: Path, samples: int) -> list[float]:
    """Append ``samples`` messages to an open run; the time each took to be drawn."""
    journal_path = root / ".gm" / "journal.db"
    async with await Journal.open(journal_path) as journal:
        run_id = await _synthetic_run(journal, 10)
        app = GmApp(root, {}, run_id=run_id)
        gaps: list[float] = []
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause(0.3)
            screen = app.screen
            assert isinstance(screen, RunScreen)
            clock = SystemClock()
            for n in range(samples):
                seen = screen.run.count
                await journal.append([new_event(clock, run_id, "user", UserMessage(text=f"m{n}"))])
                start = time.perf_counter()
                await _until(lambda: screen.run.count > seen)  # noqa: B023
                gaps.append((time.perf_counter() - start) * 1000)
                await pilot.pause(0.05)
    return gaps


async def memory_mb(root: Path, events: int) -> tuple[float, float]:
    """RSS before opening the TUI, and with a run of ``events`` events open."""
    async with await Journal.open(root / ".gm" / "journal.db") as journal:
        run_id = await _synthetic_run(journal, events)
    before = _rss_mb()
    app = GmApp(root, {}, run_id=run_id)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        await _until(lambda: isinstance(app.screen, RunScreen) and app.screen.run.count >= events)
        await pilot.pause(0.5)
        del screen
        after = _rss_mb()
    return before, after


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--quick", action="store_true")
    quick = parser.parse_args().quick
    samples, events = (10, 20_000) if quick else (30, 100_000)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "a").mkdir()
        (Path(tmp) / "b").mkdir()
        gaps = anyio.run(latency_ms, Path(tmp) / "a", samples)
        before, after = anyio.run(memory_mb, Path(tmp) / "b", events)
    print("| figure | value |")
    print("|---|---|")
    print(f"| event to screen, median | {statistics.median(gaps):.0f} ms |")
    print(f"| event to screen, worst of {samples} | {max(gaps):.0f} ms |")
    print(f"| memory before the TUI | {before:.0f} MB |")
    print(f"| memory with a {events:,}-event run open | {after:.0f} MB |")


if __name__ == "__main__":
    main()
