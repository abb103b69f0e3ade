"""What the TUI's pilot tests share: seeded journals, and waiting on conditions
(never fixed pauses) for the screen and the journal."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from textual.pilot import Pilot

from gm_agent.clock import FakeClock
from gm_agent.errors import JournalError
from gm_agent.events import Event
from gm_agent.journal import Journal
from gm_agent.kernel import run_task
from gm_agent.tui import GmApp
from tests.helpers import write_script, write_task

ASK_SHELL = {"rules": [{"tool": "run_shell", "action": "ask"}]}
"""A policy under which every shell command waits for approval."""

WAITS: list[dict[str, object]] = [
    {"tool_calls": [{"name": "run_shell", "args": {"command": "echo hi"}}]},
    {"finish": "ok"},
]
"""Moves of a run that waits for approval of its shell command (under ASK_SHELL)."""

TIMEOUT_S = 20.0


def environ() -> dict[str, str]:
    """The environment for processes the TUI starts (no GM_MODEL from the caller)."""
    return {k: v for k, v in os.environ.items() if k != "GM_MODEL"}


async def seeded(
    workspace: Path, moves: list[dict[str, object]], clock: FakeClock | None = None, **front: object
) -> str:
    """A run of ``moves`` recorded in the workspace's journal (in this process); its id."""
    script = write_script(workspace.parent / "moves.yaml", moves)
    task = write_task(workspace.parent / "task.md", "Do it.", model=f"scripted:{script}", **front)
    outcome = await run_task(
        task, workspace=workspace, environ=environ(), clock=clock or FakeClock(), heartbeat=False
    )
    return outcome.run_id


async def until(pilot: Pilot[Any], shown: Callable[[], bool], what: str) -> None:
    """Let the app run until ``shown()`` holds.

    Raises:
        AssertionError: it did not within :data:`TIMEOUT_S` seconds.
    """
    with anyio.move_on_after(TIMEOUT_S):
        while not shown():
            await pilot.pause(0.05)
        return
    raise AssertionError(f"never shown: {what}")


async def events(workspace: Path, run_id: str | None = None) -> list[Event]:
    """The journal's events (of ``run_id``, or of every run), read by another connection."""
    async with await Journal.open(workspace / ".gm" / "journal.db", read_only=True) as journal:
        if run_id is not None:
            return await journal.read(run_id)
        found: list[Event] = []
        for row in await journal.list_runs():
            found += await journal.read(row.run_id)
        return found


async def journaled(
    workspace: Path, run_id: str | None, kind: str, where: Callable[[Event], bool] = lambda e: True
) -> Event:
    """Wait for the first event of ``kind`` (of ``run_id``, or any run) that ``where`` accepts.

    Raises:
        AssertionError: none came within :data:`TIMEOUT_S` seconds.
    """
    with anyio.move_on_after(TIMEOUT_S):
        while True:
            if not (workspace / ".gm" / "journal.db").exists():  # the run is starting
                await anyio.sleep(0.05)
                continue
            try:
                seen = await events(workspace, run_id)
            except JournalError:  # created but not yet migrated by the starting run
                await anyio.sleep(0.05)
                continue
            found = [e for e in seen if e.kind == kind and where(e)]
            if found:
                return found[0]
            await anyio.sleep(0.05)
    raise AssertionError(f"no {kind} was journaled")


def shown_text(pilot: Pilot[Any], selector: str) -> str:
    """The text a Static widget shows."""
    return str(pilot.app.screen.query_one(selector).render())


def reap_all(app: GmApp) -> None:
    """Wait for the ``gm`` processes the app started to exit (a test leaves none running)."""
    for child in app.processes.running:
        child.process.wait(TIMEOUT_S)
