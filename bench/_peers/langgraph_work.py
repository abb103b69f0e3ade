"""LangGraph's side of the peer benchmarks, run with the peers' interpreter.

Run by ``bench/run.py`` as ``bench/.venv-peers/bin/python
bench/_peers/langgraph_work.py WORKLOAD --dir DIR ...``; prints one JSON line.
The graph is one node that loops on itself through a conditional edge, so each
step is one super-step, checkpointed by ``SqliteSaver`` (``DIR/lg.sqlite``; it
sets ``journal_mode=WAL`` itself in ``setup()`` and leaves ``synchronous`` at
SQLite's default, FULL) with ``durability="sync"``: the checkpoint is written
before the next step starts (LangGraph docs, "Durable execution").

Workloads:

- ``steps``: ``--steps`` super-steps, each writing a result of ``--bytes`` bytes;
  answers ms per step, timed around ``invoke`` only.
- ``growth``: the same, then the checkpoint database's bytes on disk. With
  ``--state append`` each step's result is appended to a list channel (a reducer,
  as an agent's message history is kept); with ``--state replace`` it overwrites
  one value.
- ``crash``: a 20-step run whose node appends to ``DIR/ledger.txt`` and then
  works ``--work-s`` seconds; ``--resume`` invokes the graph again with no input
  on the same thread, which continues from the latest checkpoint.
"""

# The peers live in bench/.venv-peers, not in the environment pyright checks against.
# pyright: reportMissingImports=false

from __future__ import annotations

import operator
import sqlite3
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

from _common import answer, append_ledger, now, parser, payload, sqlite_bytes
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph

THREAD = {"configurable": {"thread_id": "gm-bench"}}


class Appending(TypedDict):
    """State whose results accumulate (``operator.add`` reducer)."""

    step: int
    results: Annotated[list[str], operator.add]


class Replacing(TypedDict):
    """State whose result is overwritten by each step."""

    step: int
    result: str


def _graph(node: Any, state: type, steps: int, saver: SqliteSaver) -> Any:
    builder = StateGraph(state)
    builder.add_node("step", node)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", lambda s: "step" if s["step"] < steps else END)
    return builder.compile(checkpointer=saver)


def _config(steps: int) -> dict[str, Any]:
    return {**THREAD, "recursion_limit": steps + 10}


def _steps(saver: SqliteSaver, steps: int, size: int, appending: bool) -> float:
    """Run ``steps`` super-steps; seconds taken by ``invoke``."""

    def node(state: dict[str, Any]) -> dict[str, Any]:
        step = state["step"]
        value = payload(step, size)
        return {"step": step + 1, **({"results": [value]} if appending else {"result": value})}

    graph = _graph(node, Appending if appending else Replacing, steps, saver)
    start = {"step": 0, **({"results": []} if appending else {"result": ""})}
    started = now()
    graph.invoke(start, _config(steps), durability="sync")
    return now() - started


def _crash(saver: SqliteSaver, ledger: Path, steps: int, work_s: float, resume: bool) -> None:
    def node(state: dict[str, Any]) -> dict[str, Any]:
        step = state["step"] + 1
        append_ledger(ledger, f"step-{step}")
        time.sleep(work_s)
        return {"step": step, "result": f"step-{step} done"}

    graph = _graph(node, Replacing, steps, saver)
    graph.invoke(None if resume else {"step": 0, "result": ""}, _config(steps), durability="sync")


def main() -> None:
    """Run the workload the command line names; print its JSON answer (see the module
    docstring for each workload's fields; ms are wall milliseconds per step)."""
    args = parser(__doc__ or "").parse_args()
    db = args.dir / "lg.sqlite"
    conn = sqlite3.connect(db, check_same_thread=False)
    try:
        saver = SqliteSaver(conn)
        if args.workload == "crash":
            _crash(saver, args.dir / "ledger.txt", args.steps, args.work_s, args.resume)
            answer({"done": True})
            return
        elapsed = _steps(saver, args.steps, args.bytes, args.state == "append")
        mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0])
        sync = str(conn.execute("PRAGMA synchronous").fetchone()[0])
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    result: dict[str, Any] = {
        "ms_per_step": elapsed * 1000 / args.steps,
        "steps": args.steps,
        "journal_mode": mode,
        "synchronous": sync,
    }
    if args.workload == "growth":
        result["bytes_on_disk"] = sqlite_bytes(db)
    answer(result)


if __name__ == "__main__":
    main()
