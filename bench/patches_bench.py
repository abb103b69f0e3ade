"""What undo coverage costs: workspace snapshots around shell jobs, and undo itself.

Run: ``python bench/patches_bench.py [--quick]``. Prints a Markdown table:

- snapshot cost per shell job in a 10,000-file workspace (1,000 with
  ``--quick``): the first snapshot of a process (hashes every file), and the
  next ones (stat only, rehashing what moved), in ms; and the whole overhead a
  shell job pays (two snapshots, blobs, the lock) against the bare command;
- undo of a run that changed 1,000 files (200 with ``--quick``), in ms.
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
from gm_agent.jobs import run_shell
from gm_agent.kernel import run_task, undo_run
from gm_agent.patches import take_snapshot


def make_tree(root: Path, files: int) -> None:
    for i in range(files):
        directory = root / f"d{i // 100:03}"
        directory.mkdir(exist_ok=True)
        (directory / f"f{i:05}.txt").write_text(f"file {i}\n" * 20)


def snapshot_ms(root: Path, repeats: int) -> tuple[float, float]:
    started = time.perf_counter()
    first, _ = take_snapshot(root)
    cold = (time.perf_counter() - started) * 1000
    warm = []
    for _ in range(repeats):
        started = time.perf_counter()
        take_snapshot(root, first)
        warm.append((time.perf_counter() - started) * 1000)
    return cold, statistics.median(warm)


async def shell_job_ms(root: Path, steps: int) -> tuple[float, float]:
    """Per-step wall time of a run of `true` shell steps, and of bare `true` processes."""
    moves = "".join(
        "- tool_calls: [{name: run_shell, args: {command: 'true'}}]\n" for _ in range(steps)
    )
    (root.parent / "moves.yaml").write_text(moves + "- finish: done\n")
    task = root.parent / "task.md"
    task.write_text(
        f"---\nmodel: scripted:{root.parent / 'moves.yaml'}\nmax_steps: {steps + 1}\n---\nRun.\n"
    )
    started = time.perf_counter()
    outcome = await run_task(task, workspace=root, environ=dict(os.environ), clock=SystemClock())
    per_step = (time.perf_counter() - started) * 1000 / steps
    assert outcome.status == "succeeded"
    started = time.perf_counter()
    for _ in range(steps):
        await run_shell("true", root, timeout_s=10, env=os.environ, output_cap_bytes=1000)
    bare = (time.perf_counter() - started) * 1000 / steps
    return per_step, bare


async def undo_ms(root: Path, files: int) -> float:
    make_tree(root, files)
    command = "for f in d*/*.txt; do echo changed >> $f; done"
    (root.parent / "moves.yaml").write_text(
        f"- tool_calls: [{{name: run_shell, args: {{command: '{command}'}}}}]\n- finish: done\n"
    )
    task = root.parent / "task.md"
    task.write_text(f"---\nmodel: scripted:{root.parent / 'moves.yaml'}\n---\nChange every file.\n")
    outcome = await run_task(task, workspace=root, environ=dict(os.environ), clock=SystemClock())
    assert outcome.status == "succeeded"
    started = time.perf_counter()
    report = await undo_run(root, outcome.run_id, {})
    elapsed = (time.perf_counter() - started) * 1000
    assert len(report.files) == files, len(report.files)
    return elapsed


async def main(quick: bool) -> None:
    files = 1_000 if quick else 10_000
    undo_files = 200 if quick else 1_000
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        big = Path(tmp) / "big" / "ws"
        big.mkdir(parents=True)
        make_tree(big, files)
        cold, warm = snapshot_ms(big, 5)
        per_step, bare = await shell_job_ms(big, 10 if quick else 20)
        small = Path(tmp) / "undo" / "ws"
        small.mkdir(parents=True)
        undo = await undo_ms(small, undo_files)
    rows = [
        (f"first snapshot of a {files:,}-file workspace (hashes all, ms)", f"{cold:.0f}"),
        ("next snapshots of it (stat only, median of 5, ms)", f"{warm:.0f}"),
        ("`true` as a journaled shell step in it (ms per step)", f"{per_step:.0f}"),
        ("`true` as a bare process (ms)", f"{bare:.1f}"),
        (f"gm undo of a run that changed {undo_files:,} files (ms)", f"{undo:.0f}"),
    ]
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller workspaces")
    anyio.run(main, parser.parse_args().quick)
