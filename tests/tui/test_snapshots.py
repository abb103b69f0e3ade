"""SVG snapshots of the TUI at a fixed size, over seeded journals and a pinned clock.

Update them after a deliberate change with ``pytest tests/tui --snapshot-update``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from textual.pilot import Pilot

from gm_agent.clock import FakeClock
from gm_agent.kernel import run_task
from gm_agent.tui import GmApp
from tests.helpers import write_script, write_task

pytestmark = pytest.mark.sandbox

MOVES: list[dict[str, object]] = [
    {
        "text": "I will write the greeting, then run it.",
        "tool_calls": [
            {"name": "write_file", "args": {"path": "hello.py", "content": "print('hello')\n"}}
        ],
    },
    {"tool_calls": [{"name": "run_shell", "args": {"command": "python3 hello.py"}}]},
    {"finish": "wrote and ran hello.py"},
]


def seeded_app(workspace: Path, run: str | None) -> GmApp:
    script = write_script(workspace.parent / "moves.yaml", MOVES)
    task = write_task(
        workspace.parent / "task.md",
        "Write hello.py and run it.",
        model=f"scripted:{script}",
        policy={"rules": [{"tool": "run_shell", "action": "ask"}]},
    )
    clock = FakeClock()
    anyio.run(
        lambda: run_task(
            task, workspace=workspace, environ=dict(os.environ), clock=clock, heartbeat=False
        )
    )
    clock.advance(timedelta(minutes=5).total_seconds())  # ages are pinned too
    return GmApp(workspace, {}, run_id=run, clock=clock)


async def settle(pilot: Pilot[Any]) -> None:
    await pilot.pause(0.5)


SIZE = (80, 24)
"""The smallest terminal the TUI is made for: every snapshot is taken at it."""


def test_runs_list(workspace: Path, snap_compare: Any) -> None:
    assert snap_compare(seeded_app(workspace, None), terminal_size=SIZE, run_before=settle)


def test_run_view_with_a_diff_waiting_for_approval(workspace: Path, snap_compare: Any) -> None:
    assert snap_compare(seeded_app(workspace, "last"), terminal_size=SIZE, run_before=settle)


def test_run_view_in_the_light_theme(workspace: Path, snap_compare: Any) -> None:
    app = seeded_app(workspace, "last")
    app.theme = "textual-light"
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_jobs_tab(workspace: Path, snap_compare: Any) -> None:
    async def open_jobs(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("3")
        await pilot.pause(0.2)

    assert snap_compare(seeded_app(workspace, "last"), terminal_size=SIZE, run_before=open_jobs)


def test_help_screen(workspace: Path, snap_compare: Any) -> None:
    async def open_help(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.2)

    assert snap_compare(seeded_app(workspace, "last"), terminal_size=SIZE, run_before=open_help)
