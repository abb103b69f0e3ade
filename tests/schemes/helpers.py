"""What the scheme run tests share: a scheme file, and which runs are the
scheme's (the ledger, runs and events `gm` reports are in tests/helpers.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.helpers import kinds, runs


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
