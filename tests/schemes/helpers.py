"""What the scheme run tests share: a scheme file, the ledger its steps append
to, and the runs and events `gm` reports."""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import gm


def write_scheme(workspace: Path, name: str, steps: str, params: str = "") -> Path:
    """``.gm/schemes/NAME.yaml`` with ``steps`` (YAML, indented as written)."""
    folder = workspace / ".gm" / "schemes"
    folder.mkdir(parents=True, exist_ok=True)
    text = f"name: {name}\ndescription: A scheme under test.\n"
    if params:
        text += "params:\n" + textwrap.indent(textwrap.dedent(params), "  ")
    text += "steps:\n" + textwrap.indent(textwrap.dedent(steps), "  ")
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def ledger(workspace: Path) -> list[str]:
    """The words the steps appended to ``ledger``, in order."""
    path = workspace / "ledger"
    return path.read_text(encoding="utf-8").split() if path.exists() else []


def runs(workspace: Path) -> list[dict[str, Any]]:
    """`gm runs --json`: every run, newest first."""
    listed = gm("runs", "--json", cwd=workspace)
    return [json.loads(line) for line in listed.stdout.splitlines()]


def scheme_run_id(workspace: Path) -> str:
    """The (only) scheme run's id: agent steps make runs of their own."""
    (found,) = [r["run_id"] for r in runs(workspace) if r["task"].startswith("scheme ")]
    return found


def scheme_events(workspace: Path) -> list[str]:
    """The kinds of the scheme run's events; none before it is journaled."""
    if not (workspace / ".gm" / "journal.db").exists():
        return []
    found = [r["run_id"] for r in runs(workspace) if r["task"].startswith("scheme ")]
    return kinds(workspace, found[0]) if found else []


def agent_run_ids(workspace: Path) -> list[str]:
    """The ids of the runs that are not scheme runs (agent steps', the fallback's)."""
    return [r["run_id"] for r in runs(workspace) if not r["task"].startswith("scheme ")]


def events(workspace: Path, run_id: str) -> list[dict[str, Any]]:
    """`gm log --json RUN`: the run's events as dicts."""
    logged = gm("log", "--json", run_id, cwd=workspace)
    return [json.loads(line) for line in logged.stdout.splitlines()]


def kinds(workspace: Path, run_id: str) -> list[str]:
    """The kinds of the run's events, in order."""
    return [event["kind"] for event in events(workspace, run_id)]


def of_kind(workspace: Path, run_id: str, kind: str) -> list[dict[str, Any]]:
    """The ``data`` of the run's events of ``kind``."""
    return [e["data"] for e in events(workspace, run_id) if e["kind"] == kind]


def stopped(process: subprocess.Popen[str]) -> None:
    """Make sure ``process`` ended (killed if it still runs) and its pipes are closed."""
    process.kill()
    process.communicate(timeout=60)


def await_condition(
    what: str, holds: Callable[[], bool], process: subprocess.Popen[str] | None = None
) -> None:
    """Wait until ``holds()`` (polled every 50 ms, for at most a minute); fail
    naming ``what``, or with ``process``'s output when it ended first."""
    deadline = time.monotonic() + 60
    while not holds():
        assert time.monotonic() < deadline, f"{what} never happened"
        if process is not None and process.poll() is not None:
            raise AssertionError(f"gm ended before {what}: {process.communicate()}")
        time.sleep(0.05)
