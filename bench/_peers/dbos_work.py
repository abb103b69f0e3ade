"""DBOS Transact's side of the peer benchmarks, run with the peers' interpreter.

Run by ``bench/run.py`` as ``bench/.venv-peers/bin/python bench/_peers/dbos_work.py
WORKLOAD --dir DIR ...``; prints one JSON line. DBOS runs on SQLite
(``system_database_url = sqlite:///DIR/dbos.sqlite``). DBOS 3.4 sets no
``journal_mode`` of its own (``dbos/_sys_db_sqlite.py`` sets only
``isolation_level = IMMEDIATE``, ``busy_timeout`` and ``foreign_keys``), so its
default is SQLite's: a rollback journal (``DELETE``) with ``synchronous=FULL``.
``--journal-mode wal`` creates the file in WAL mode first; WAL is persistent in
the file (SQLite docs, "Write-Ahead Logging"), so DBOS's connections use it.

Workloads:

- ``steps``: one workflow of ``--steps`` steps, each returning ``--bytes`` bytes
  (recorded by DBOS in ``operation_outputs``); answers ms per step, timed around
  the workflow call only (not the import or ``DBOS.launch()``).
- ``growth``: the same, then the system database's bytes on disk.
- ``crash``: a 20-step workflow whose steps append to ``DIR/ledger.txt`` and then
  work ``--work-s`` seconds; ``--resume`` relaunches DBOS, which recovers the
  pending workflow by itself (its documented recovery), and waits for it.
"""

# The peers live in bench/.venv-peers, not in the environment pyright checks against.
# pyright: reportMissingImports=false

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from _common import answer, append_ledger, now, parser, payload, sqlite_bytes
from dbos import DBOS, SetWorkflowID

WORKFLOW_ID = "gm-bench-crash"


@DBOS.step()
def record(step: int, size: int) -> str:
    """One durable step: its result is what DBOS records."""
    return payload(step, size)


@DBOS.workflow()
def loop(steps: int, size: int) -> int:
    """``steps`` durable steps in a row."""
    for step in range(steps):
        record(step, size)
    return steps


@DBOS.step()
def effect(ledger: str, step: int, work_s: float) -> str:
    """A side effect (the ledger line), then ``work_s`` seconds of work before the result."""
    append_ledger(Path(ledger), f"step-{step}")
    time.sleep(work_s)
    return f"step-{step} done"


@DBOS.workflow()
def crash_run(ledger: str, steps: int, work_s: float) -> int:
    """The run the harness kills: ``steps`` side effects in a row."""
    for step in range(1, steps + 1):
        effect(ledger, step, work_s)
    return steps


def _pragmas(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0])
        sync = str(conn.execute("PRAGMA synchronous").fetchone()[0])
    return {"journal_mode": mode, "synchronous": sync}


def main() -> None:
    """Run the workload the command line names; print its JSON answer (see the module
    docstring for each workload's fields; ms are wall milliseconds per step)."""
    args = parser(__doc__ or "").parse_args()
    db = args.dir / "dbos.sqlite"
    if args.journal_mode == "wal" and not db.exists():
        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
    DBOS(
        config={
            "name": "gm-bench",
            "system_database_url": f"sqlite:///{db}",
            "log_level": "WARNING",
        }
    )
    DBOS.launch()
    try:
        if args.workload == "crash":
            ledger = str(args.dir / "ledger.txt")
            if args.resume:
                DBOS.retrieve_workflow(WORKFLOW_ID).get_result()
            else:
                with SetWorkflowID(WORKFLOW_ID):
                    crash_run(ledger, args.steps, args.work_s)
            answer({"done": True})
            return
        started = now()
        loop(args.steps, args.bytes)
        elapsed = now() - started
    finally:
        DBOS.destroy()
    result = {"ms_per_step": elapsed * 1000 / args.steps, "steps": args.steps, **_pragmas(db)}
    if args.workload == "growth":
        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        result["bytes_on_disk"] = sqlite_bytes(db)
    answer(result)


if __name__ == "__main__":
    main()
