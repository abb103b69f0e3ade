"""Crash and resume: the torture harness at scale, and how fast a resume gets going.

Run: ``python bench/torture_bench.py [--quick]``. Prints a Markdown table:

- the torture harness (tests/torture.py) with 300 random SIGKILLs (30 with
  ``--quick``): kills, runs, ambiguous jobs, duplicated side effects (goal 0);
- resume latency: from starting ``gm resume`` after a SIGKILL to the first new
  event it commits, median of several runs, in ms (the process start-up included,
  as a user waits for it).
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from tests.torture import script, torture  # noqa: E402


def _max_seq(journal: Path) -> int:
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])


def resume_latency_ms(root: Path) -> float:
    """Crash a run after its first shell command, then time `gm resume` to its first event."""
    root.mkdir()
    (root / "moves.yaml").write_text(yaml.safe_dump(script(6)))
    (root / "task.md").write_text("---\nmodel: scripted:moves.yaml\n---\nDo every step.\n")
    gm = [sys.executable, "-m", "gm_agent"]
    crashed = subprocess.run(
        [*gm, "run", "task.md"],
        cwd=root,
        env={"GM_CRASH_AT": "job.after_effect:2", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        check=False,
    )
    assert crashed.returncode == -9, crashed.stderr
    journal = root / ".gm" / "journal.db"
    before = _max_seq(journal)
    start = time.perf_counter()
    process = subprocess.Popen(
        [*gm, "resume", "last"], cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    while _max_seq(journal) == before:
        time.sleep(0.001)
    elapsed = (time.perf_counter() - start) * 1000
    assert process.wait(timeout=60) == 0
    return elapsed


def main(quick: bool) -> None:
    kills = 30 if quick else 300
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        report = torture(root / "torture", kills=kills, seed=12)
        torture_s = time.perf_counter() - started
        latencies = [resume_latency_ms(root / f"latency-{i}") for i in range(5 if quick else 15)]
    rows = [
        ("SIGKILLs landed", f"{report.kills}"),
        (
            "runs driven to the end / gm processes started",
            f"{report.scenarios} / {report.processes}",
        ),
        ("ambiguous jobs (of which never ran)", f"{report.ambiguous} ({report.ambiguous_not_run})"),
        ("duplicated side effects", f"{report.duplicates}"),
        ("audit problems", f"{len(report.problems)}"),
        ("torture wall time (s)", f"{torture_s:.0f}"),
        (
            f"resume latency, process start to first new event (median of {len(latencies)}, ms)",
            f"{statistics.median(latencies):.0f}",
        ),
    ]
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    for problem in report.problems:
        print(f"problem: {problem}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="30 kills instead of 300")
    main(parser.parse_args().quick)
