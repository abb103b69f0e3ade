"""Steering latency: how fast a live run in another process acts on a control event.

Run: ``python bench/control_latency.py [--quick]``. Prints a Markdown table with
the median and worst, over several runs, of the time between a control event
being committed and the running kernel's reaction being committed (both as the
journal records them, ``at`` of each event), for:

- ``gm cancel`` of a run whose shell command is running (``run.cancel`` to
  ``job.cancelled``: the process group killed and recorded);
- ``gm interrupt`` of a run whose model request is in flight (``run.interrupt``
  to ``job.cancelled`` of the model request);
- ``gm send --preempt`` while the model thinks (the message to ``job.cancelled``).

The target (ARCHITECTURE.md) is 100 ms. The model is a local HTTP server that
answers after 30 s, so a request is surely in flight.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GM = [sys.executable, "-m", "gm_agent"]


class _SlowModel(BaseHTTPRequestHandler):
    """An OpenAI-compatible server that takes 30 s to answer."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(30)
        body = json.dumps({"choices": [{"message": {"role": "assistant", "content": "late"}}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: object) -> None:
        del format, args


def _events(journal: Path) -> list[tuple[str, str, str]]:
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as conn:
            rows = conn.execute("SELECT kind, at, data FROM events ORDER BY seq").fetchall()
    except sqlite3.OperationalError:  # the journal is being created
        return []
    return [(str(k), str(a), str(d)) for k, a, d in rows]


def _wait_for(journal: Path, kind: str, count: int = 1, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if journal.exists() and sum(k == kind for k, _, _ in _events(journal)) >= count:
            return
        time.sleep(0.01)
    raise TimeoutError(f"no {kind} in {timeout} s")


def _gap_ms(journal: Path, first: str, then: str) -> float:
    events = _events(journal)
    start = [datetime.fromisoformat(a) for k, a, _ in events if k == first][-1]  # not the task
    end = next(
        datetime.fromisoformat(a)
        for k, a, _ in events
        if k == then and datetime.fromisoformat(a) >= start
    )
    return (end - start).total_seconds() * 1000


def one(root: Path, case: str, model_url: str) -> float:
    """One run steered once; the reaction latency in ms."""
    root.mkdir()
    journal = root / ".gm" / "journal.db"
    if case == "cancel":
        (root / "moves.yaml").write_text(
            '- tool_calls: [{name: run_shell, args: {command: "sleep 60"}}]\n'
        )
        model = "scripted:moves.yaml"
    else:
        model = "openai:slow"
    (root / "task.md").write_text(f"---\nmodel: {model}\n---\nWork.\n")
    env = {**os.environ, "OPENAI_BASE_URL": model_url, "OPENAI_API_KEY": "none"}
    env.pop("GM_MODEL", None)
    run = subprocess.Popen(
        [*GM, "run", "task.md"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(journal, "job.intent", 2 if case == "cancel" else 1)
        time.sleep(0.3)
        command = {
            "cancel": ["cancel", "last", "--yes"],
            "interrupt": ["interrupt", "last"],
            "preempt": ["send", "last", "now this", "--preempt"],
        }[case]
        subprocess.run([*GM, *command], cwd=root, env=env, capture_output=True, check=True)
        control = {"cancel": "run.cancel", "interrupt": "run.interrupt", "preempt": "user.message"}[
            case
        ]
        _wait_for(journal, "job.cancelled")
        return _gap_ms(journal, control, "job.cancelled")
    finally:
        run.kill()
        run.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 runs per case instead of 10")
    repeats = 3 if parser.parse_args().quick else 10
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    print("| control | reaction | median ms | worst ms | runs |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for case, reaction in (
            ("cancel", "shell command killed"),
            ("interrupt", "model request stopped"),
            ("preempt", "model request stopped"),
        ):
            gaps = [one(Path(tmp) / f"{case}{n}", case, url) for n in range(repeats)]
            print(
                f"| `gm {'send --preempt' if case == 'preempt' else case}` | {reaction} | "
                f"{statistics.median(gaps):.0f} | {max(gaps):.0f} | {repeats} |"
            )
    server.shutdown()


if __name__ == "__main__":
    main()
