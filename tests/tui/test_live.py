"""The TUI's keys against a run that another process is executing right now."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from gm_agent.events import RunFinished
from gm_agent.tui import GmApp
from tests.conftest import gm_process
from tests.helpers import write_script, write_task
from tests.tui.pilots import ASK_SHELL, WAITS, events, journaled, shown_text, until

pytestmark = [pytest.mark.anyio, pytest.mark.sandbox]


@pytest.fixture
def live_run(workspace: Path) -> Iterator[subprocess.Popen[str]]:
    """`gm run --wait-for-approval` in another process: it waits, live, for its
    shell command's approval."""
    script = write_script(workspace.parent / "moves.yaml", WAITS)
    task = write_task(
        workspace.parent / "task.md", "Do it.", model=f"scripted:{script}", policy=ASK_SHELL
    )
    run = gm_process("run", str(task), "--wait-for-approval", cwd=workspace)
    try:
        yield run
    finally:
        run.kill()
        run.communicate()


@asynccontextmanager
async def watching(workspace: Path) -> AsyncIterator[tuple[Pilot[Any], str]]:
    """The TUI open on the live run once it waits for approval; the pilot and the run id."""
    asked = await journaled(workspace, None, "approval.requested")
    app = GmApp(workspace, {}, run_id=asked.run_id)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: "waiting (approval)" in shown_text(pilot, "#status"), "waits")
        yield pilot, asked.run_id


async def test_escape_interrupts_the_live_run_which_pauses(
    workspace: Path, live_run: subprocess.Popen[str]
) -> None:
    async with watching(workspace) as (pilot, run_id):
        await pilot.press("escape")
        interrupt = await journaled(workspace, run_id, "run.interrupt")
        await until(pilot, lambda: shown_text(pilot, "#status").startswith("paused"), "paused")
    assert interrupt.source == "user"
    assert live_run.wait(30) == 130  # the run's process: interrupted, resumable


async def test_cancel_asks_then_cancels_the_live_run(
    workspace: Path, live_run: subprocess.Popen[str]
) -> None:
    async with watching(workspace) as (pilot, run_id):
        await pilot.press("c")
        await pilot.press("n")  # no: nothing is sent
        await pilot.press("c", "y")
        finished = await journaled(workspace, run_id, "run.finished")
    assert isinstance(finished.data, RunFinished) and finished.data.status == "cancelled"
    assert live_run.wait(30) == 1
    kinds = [e.kind for e in await events(workspace)]
    assert kinds.count("run.cancel") == 1


async def test_a_preempting_message_reaches_the_live_run(
    workspace: Path, live_run: subprocess.Popen[str]
) -> None:
    async with watching(workspace) as (pilot, run_id):
        await pilot.press("M", *"skip the shell", "enter")
        sent = await journaled(
            workspace,
            run_id,
            "user.message",
            lambda e: e.source == "user" and "skip" in str(e.data),
        )
        await pilot.press("a")  # the run goes on, and reads the message after the step
        await journaled(workspace, run_id, "run.finished")
    assert "preempt=True" in repr(sent.data)
    assert live_run.wait(30) == 0
