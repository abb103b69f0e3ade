"""The TUI driven by Textual's pilot over real journals: every key is a journaled command."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from gm_agent.clock import FakeClock
from gm_agent.events import Event
from gm_agent.journal import Journal
from gm_agent.kernel import run_task
from gm_agent.tui import GmApp
from gm_agent.tui.app import RunScreen, RunsScreen
from tests.helpers import write_script, write_task

pytestmark = [pytest.mark.anyio, pytest.mark.sandbox]

ASK_SHELL = {"rules": [{"tool": "run_shell", "action": "ask"}]}


async def seeded(workspace: Path, moves: list[dict[str, object]], **front: object) -> str:
    """A run of ``moves`` recorded in the workspace's journal; its id."""
    script = write_script(workspace.parent / "moves.yaml", moves)
    task = write_task(workspace.parent / "task.md", "Do it.", model=f"scripted:{script}", **front)
    outcome = await run_task(
        task, workspace=workspace, environ=dict(os.environ), clock=FakeClock(), heartbeat=False
    )
    return outcome.run_id


async def journaled(workspace: Path, run_id: str, kind: str) -> Event:
    """Wait for the run's first event of ``kind`` (the TUI acts in the background)."""
    with anyio.fail_after(15):
        while True:
            async with await Journal.open(workspace / ".gm" / "journal.db") as journal:
                found = [e for e in await journal.read(run_id) if e.kind == kind]
            if found:
                return found[0]
            await anyio.sleep(0.05)


WAITS = [{"tool_calls": [{"name": "run_shell", "args": {"command": "echo hi"}}]}, {"finish": "ok"}]


async def test_the_runs_list_shows_each_run_and_opens_the_selected_one(workspace: Path) -> None:
    run_id = await seeded(workspace, WAITS, policy=ASK_SHELL)
    app = GmApp(workspace, {})
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.3)
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        table = screen._table()
        assert table.row_count == 1
        assert [str(c) for c in table.get_row_at(0)[:2]] == [run_id[-8:], "waiting"]
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, RunScreen) and app.screen.run.run_id == run_id


async def test_approving_a_waiting_call_journals_the_grant(workspace: Path) -> None:
    run_id = await seeded(workspace, WAITS, policy=ASK_SHELL)
    app = GmApp(workspace, {}, run_id=run_id)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.3)
        assert app.screen.query_one("#approval").display  # the approval bar is up
        await pilot.press("a")
        granted = await journaled(workspace, run_id, "approval.granted")
    assert granted.source == "user"


async def test_sending_a_message_journals_it(workspace: Path) -> None:
    run_id = await seeded(workspace, WAITS, policy=ASK_SHELL)
    app = GmApp(workspace, {}, run_id=run_id)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("m", *"use staging", "enter")
        sent = await journaled(workspace, run_id, "user.message")
    async with await Journal.open(workspace / ".gm" / "journal.db") as journal:
        messages = [e.data for e in await journal.read(run_id) if e.kind == "user.message"]
    assert [m.text for m in messages] == ["Do it.", "use staging"]  # type: ignore[union-attr]
    assert sent.kind == "user.message"


async def test_undo_asks_first_then_reverts_the_runs_changes(workspace: Path) -> None:
    moves: list[dict[str, object]] = [
        {"tool_calls": [{"name": "write_file", "args": {"path": "a.txt", "content": "a\n"}}]},
        {"finish": "wrote a.txt"},
    ]
    run_id = await seeded(workspace, moves)
    assert (workspace / "a.txt").exists()
    app = GmApp(workspace, {}, run_id=run_id)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("u")
        await pilot.pause(0.1)
        await pilot.press("y")
        await journaled(workspace, run_id, "patch.reverted")
    assert not (workspace / "a.txt").exists()


async def test_the_help_screen_lists_every_binding(workspace: Path) -> None:
    await seeded(workspace, [{"finish": "ok"}])
    app = GmApp(workspace, {}, run_id="last")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("question_mark")
        await pilot.pause(0.2)
        text = " ".join(str(label.render()) for label in app.screen.query("Label"))
    for word in ("Approve", "Deny", "Interrupt", "Cancel", "Undo", "Fork", "Preempt"):
        assert word in text


async def test_a_reply_streaming_in_another_process_is_shown_as_it_comes(workspace: Path) -> None:
    from gm_agent.journal import new_owner
    from gm_agent.kernel._live import live_path

    run_id = await seeded(workspace, WAITS, policy=ASK_SHELL)
    app = GmApp(workspace, {}, run_id=run_id)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.3)
        streaming = app.screen.query_one("#streaming")
        assert not streaming.display
        async with await Journal.open(workspace / ".gm" / "journal.db") as journal:
            owner = new_owner("test")  # a live process executes the run
            await journal.acquire_lease(run_id, owner, 60)
        live = live_path(workspace, run_id)
        live.parent.mkdir(parents=True, exist_ok=True)
        live.write_text("Thinking about the fi")  # what the kernel writes while a reply streams
        await pilot.pause(0.4)
        assert streaming.display and "Thinking about the fi" in str(streaming.render())
        live.unlink()  # journaled: the kernel removes it
        await pilot.pause(0.4)
        assert not streaming.display


async def test_journal_text_is_shown_as_text_never_as_markup_and_filters_never_crash(
    workspace: Path,
) -> None:
    script = write_script(workspace.parent / "moves.yaml", [{"finish": "ok"}])
    clock = FakeClock()  # one clock: two runs, two ids
    for text in ("Fix the [/] handling", "Style [red]this[/red]"):
        task = write_task(workspace.parent / "task.md", text, model=f"scripted:{script}")
        await run_task(
            task, workspace=workspace, environ=dict(os.environ), clock=clock, heartbeat=False
        )
    app = GmApp(workspace, {})
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.3)
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        tasks = {str(screen._table().get_row_at(i)[2]) for i in range(2)}
        assert tasks == {"Fix the [/] handling", "Style [red]this[/red]"}
        await pilot.press("slash", *"Fix", "enter")  # hides the selected (newest) run
        await pilot.pause(0.3)
        assert screen._table().row_count == 1 and app.is_running
