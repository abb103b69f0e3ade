"""The peer benchmark harness (bench/run.py) still runs: one tiny gm_agent-only workload.

No timing is asserted (benchmarks are figures, never assertions): only that the
harness drives the real journal and job runner and answers in the shape the
results page is built from.
"""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
from pathlib import Path
from types import ModuleType

BENCH_RUN = Path(__file__).resolve().parent.parent / "bench" / "run.py"


def _load_run() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", BENCH_RUN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_gm_job_steps_answer_in_the_results_shape(tmp_path: Path) -> None:
    run = _load_run()

    trials = run.measure_steps(tmp_path, [run.GM_JOB], repeats=1, steps=20)

    assert list(trials) == [run.GM_JOB]
    (trial,) = trials[run.GM_JOB]
    assert set(trial) == {"ms_per_step", "bytes_on_disk"}
    assert trial["ms_per_step"] > 0
    journal = next(tmp_path.glob("steps-0-*/.gm/journal.db"))
    assert trial["bytes_on_disk"] >= journal.stat().st_size
    with sqlite3.connect(journal) as conn:
        kinds = dict(conn.execute("SELECT kind, count(*) FROM events GROUP BY kind").fetchall())
    conn.close()
    assert kinds["job.intent"] == kinds["job.result"] == 20
