"""The TUI driven by Textual's pilot over real journals: every key is a journaled command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.pilot import Pilot

from gm_agent.clock import FakeClock
from gm_agent.events import ApprovalDenied, ApprovalGranted, JobResult, UserMessage
from gm_agent.tui import GmApp
from gm_agent.tui._run_screen import RunScreen
from gm_agent.tui._runs_screen import RunsScreen
from gm_agent.tui._tabs import EventsTable, JobsTable, PatchesTable
from tests.helpers import write_script, write_task
from tests.tui.pilots import (
    ASK_SHELL,
    WAITS,
    environ,
    events,
    journaled,
    reap_all,
    seeded,
    shown_text,
    until,
)

pytestmark = [pytest.mark.anyio, pytest.mark.sandbox]

WRITES_TWO: list[dict[str, object]] = [
    {"tool_calls": [{"name": "write_file", "args": {"path": "a.txt", "content": "a\n"}}]},
    {"tool_calls": [{"name": "write_file", "args": {"path": "b.txt", "content": "b\n"}}]},
    {"finish": "wrote a.txt and b.txt"},
]


async def select(pilot: Pilot[Any], table: EventsTable, seq: int) -> None:
    """Move the cursor up to event ``seq``, as a person would."""
    for _ in range(table.row_count):
        if table.selected_seq() == seq:
            return
        await pilot.press("up")
    raise AssertionError(f"seq {seq} is not in the events tab")


def run_screen(app: GmApp) -> RunScreen:
    screen = app.screen
    assert isinstance(screen, RunScreen)
    return screen


async def test_the_runs_list_shows_each_run_with_why_it_waits_and_opens_it(
    workspace: Path,
) -> None:
    run_id = await seeded(workspace, WAITS, policy=ASK_SHELL)
    app = GmApp(workspace, {})
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        table = screen.table()
        await until(pilot, lambda: table.row_count == 1, "the run")
        assert [str(c) for c in table.get_row_at(0)[:2]] == [run_id[-8:], "waiting: approval"]
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunScreen), "the run view")
        assert run_screen(app).run.run_id == run_id


async def test_approving_a_waiting_call_journals_the_grant(workspace: Path) -> None:
    run_id = await seeded(workspace, WAITS, policy=ASK_SHELL)
    app = GmApp(workspace, {}, run_id=run_id)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.screen.query_one("#approval").display, "the approval bar")
        assert "run_shell waits" in shown_text(pilot, "#asking")
        await pilot.press("a")
        granted = await journaled(workspace, run_id, "approval.granted")
    assert granted.source == "user"
    assert isinstance(granted.data, ApprovalGranted) and granted.data.always is None


async def test_always_approves_the_call_and_its_kind_for_the_rest_of_the_run(
    workspace: Path,
) -> None:
    run_id = await seeded(workspace, WAITS, policy=ASK_SHELL)
    app = GmApp(workspace, {}, run_id=run_id)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.screen.query_one("#approval").display, "the approval bar")
        await pilot.press("A")
        granted = await journaled(workspace, run_id, "approval.granted")
    assert isinstance(granted.data, ApprovalGranted) and granted.data.always == "run"


async def test_deny_asks_why_and_journals_the_reason(workspace: Path) -> None:
    run_id = await seeded(workspace, WAITS, policy=ASK_SHELL)
    app = GmApp(workspace, {}, run_id=run_id)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.screen.query_one("#approval").display, "the approval bar")
        await pilot.press("d", *"not on prod", "enter")
        denied = await journaled(workspace, run_id, "approval.denied")
    assert isinstance(denied.data, ApprovalDenied) and denied.data.reason == "not on prod"


async def test_sending_a_message_or_a_preempting_one_journals_it(workspace: Path) -> None:
    run_id = await seeded(workspace, WAITS, policy=ASK_SHELL)
    app = GmApp(workspace, {}, run_id=run_id)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: run_screen(app).run.count > 0, "the run's events")
        await pilot.press("m", *"use staging", "enter")
        await journaled(workspace, run_id, "user.message", lambda e: "staging" in str(e.data))
        await pilot.press("M", *"stop that", "enter")
        await journaled(workspace, run_id, "user.message", lambda e: "stop" in str(e.data))
    sent = [e.data for e in await events(workspace, run_id) if isinstance(e.data, UserMessage)]
    assert [(m.text, m.preempt) for m in sent] == [
        ("Do it.", False),
        ("use staging", False),
        ("stop that", True),
    ]


async def test_approve_then_resume_finishes_a_run_no_process_was_running(
    workspace: Path,
) -> None:
    run_id = await seeded(workspace, WAITS, policy=ASK_SHELL)  # stopped: waiting, no process
    app = GmApp(workspace, environ(), run_id=run_id)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.screen.query_one("#approval").display, "the approval bar")
        await pilot.press("a")
        await journaled(workspace, run_id, "approval.granted")
        await pilot.press("r")  # a detached `gm resume`, logged under .gm/logs/
        finished = await journaled(workspace, run_id, "run.finished")
        await until(pilot, lambda: "succeeded" in shown_text(pilot, "#status"), "succeeded")
    reap_all(app)
    assert "ok" in str(finished.data)
    journal = await events(workspace, run_id)
    assert "run.resumed" in [e.kind for e in journal]
    results = [e.data for e in journal if isinstance(e.data, JobResult)]
    assert [r.job_kind for r in results] == ["model", "shell", "model"]  # each once
    assert list((workspace / ".gm" / "logs").glob(f"resume-{run_id}-*.log"))


async def test_undo_asks_first_then_reverts_every_change_of_the_run(workspace: Path) -> None:
    run_id = await seeded(workspace, WRITES_TWO)
    app = GmApp(workspace, {}, run_id=run_id)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: run_screen(app).run.count > 0, "the run's events")
        await pilot.press("u")
        await until(
            pilot,
            lambda: "Undo every change" in str(app.screen.query("Label")[0].render()),
            "the question",
        )
        await pilot.press("y")
        await journaled(workspace, run_id, "patch.reverted", lambda e: "b.txt" in str(e.data))
    assert not (workspace / "a.txt").exists() and not (workspace / "b.txt").exists()


async def test_undo_on_the_patches_tab_reverts_only_the_selected_patch(workspace: Path) -> None:
    run_id = await seeded(workspace, WRITES_TWO)
    app = GmApp(workspace, {}, run_id=run_id)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("4")
        table = app.screen.query_one(PatchesTable)
        await until(pilot, lambda: table.row_count == 2, "two patches")
        assert table.cursor_row == 0  # the first: a.txt
        await pilot.press("u", "y")
        await journaled(workspace, run_id, "patch.reverted")
        await until(pilot, lambda: "reverted" in str(table.get_row_at(0)), "a reverted patch")
        assert "applied" in str(table.get_row_at(1))
    assert not (workspace / "a.txt").exists()
    assert (workspace / "b.txt").read_text() == "b\n"  # the other patch stays
    assert [e.kind for e in await events(workspace, run_id)].count("patch.reverted") == 1


async def test_fork_on_the_events_tab_forks_at_the_selected_event(workspace: Path) -> None:
    run_id = await seeded(workspace, WRITES_TWO)
    first_return = next(e for e in await events(workspace, run_id) if e.kind == "tool.returned")
    app = GmApp(workspace, environ(), run_id=run_id)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2")
        table = app.screen.query_one(EventsTable)
        await until(pilot, lambda: table.row_count > 0, "the events")
        await select(pilot, table, first_return.seq)
        await pilot.press("f")
        forked = await journaled(workspace, None, "run.forked")
    reap_all(app)
    assert f"'fork_seq': {first_return.seq}" in str(forked.data.model_dump())
    assert forked.run_id != run_id


async def test_a_refused_fork_is_reported_with_the_reason(workspace: Path) -> None:
    run_id = await seeded(workspace, WRITES_TWO)
    called = next(e for e in await events(workspace, run_id) if e.kind == "tool.called")
    app = GmApp(workspace, environ(), run_id=run_id)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2")
        table = app.screen.query_one(EventsTable)
        await until(pilot, lambda: table.row_count > 0, "the events")
        await select(pilot, table, called.seq)  # mid-step: not a safe point
        await pilot.press("f")
        await until(
            pilot,
            lambda: any("exited with 2" in n.message for n in app._notifications),
            "the refusal",
        )
        said = next(n.message for n in app._notifications if "exited" in n.message)
    reap_all(app)
    assert said.startswith(f"gm fork {run_id} exited with 2: ")
    assert f"the nearest earlier safe point is seq {called.seq - 1}" in said


async def test_the_jobs_tab_shows_each_job_with_its_status_and_duration(workspace: Path) -> None:
    moves: list[dict[str, object]] = [
        {"tool_calls": [{"name": "run_shell", "args": {"command": "echo hi"}}]},
        {"finish": "ok"},
    ]
    run_id = await seeded(workspace, moves)
    app = GmApp(workspace, {}, run_id=run_id)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("3")
        table = app.screen.query_one(JobsTable)
        await until(pilot, lambda: table.row_count == 3, "three jobs")
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(3)]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("model", "ok", "1"),
        ("shell", "ok", "1"),
        ("model", "ok", "1"),
    ]
    assert rows[1][4] == "echo hi" and rows[1][3].endswith(("ms", " s"))


async def test_the_status_line_shows_steps_tokens_cost_context_and_sandbox(
    workspace: Path,
) -> None:
    run_id = await seeded(workspace, WAITS, policy=ASK_SHELL)
    app = GmApp(workspace, {}, run_id=run_id, clock=FakeClock())
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "step 1/" in shown_text(pilot, "#status"), "the status")
        status = shown_text(pilot, "#status")
    assert status.startswith("waiting (approval) · scripted:moves.yaml · step 1/30 · ")
    assert " tok · $0.0000 · ctx " in status and "%" in status


async def test_the_help_screen_lists_every_binding(workspace: Path) -> None:
    await seeded(workspace, [{"finish": "ok"}])
    app = GmApp(workspace, {}, run_id="last")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunScreen), "the run view")
        await pilot.press("question_mark")
        await until(pilot, lambda: len(app.screen.query("Label")) > 10, "the help")
        text = " ".join(str(label.render()) for label in app.screen.query("Label"))
    for word in ("Approve", "and its kind", "Deny", "Preempt", "Interrupt", "Resume"):
        assert word in text
    for word in ("the selected one", "the selected event", "Events", "Jobs", "Patches"):
        assert word in text


async def test_a_reply_streaming_in_another_process_is_shown_as_it_comes(workspace: Path) -> None:
    from gm_agent.journal import Journal, new_owner
    from gm_agent.kernel._live import live_path

    run_id = await seeded(workspace, WAITS, policy=ASK_SHELL)
    app = GmApp(workspace, {}, run_id=run_id)
    async with app.run_test(size=(100, 30)) as pilot:
        streaming = app.screen.query_one("#streaming")
        await until(pilot, lambda: run_screen(app).run.count > 0, "the run's events")
        assert not streaming.display
        async with await Journal.open(workspace / ".gm" / "journal.db") as journal:
            owner = new_owner("test")  # a live process executes the run
            await journal.acquire_lease(run_id, owner, 60)
        live = live_path(workspace, run_id)
        live.parent.mkdir(parents=True, exist_ok=True)
        live.write_text("Thinking about the fi")  # what the kernel writes while a reply streams
        await until(pilot, lambda: "Thinking about the fi" in str(streaming.render()), "stream")
        live.unlink()  # journaled: the kernel removes it
        await until(pilot, lambda: not streaming.display, "the stream gone")


async def test_journal_text_is_shown_as_text_never_as_markup_and_filters_never_crash(
    workspace: Path,
) -> None:
    from gm_agent.kernel import run_task

    script = write_script(workspace.parent / "moves.yaml", [{"finish": "ok"}])
    clock = FakeClock()  # one clock: two runs, two ids
    for text in ("Fix the [/] handling", "Style [red]this[/red]"):
        task = write_task(workspace.parent / "task.md", text, model=f"scripted:{script}")
        await run_task(task, workspace=workspace, environ=environ(), clock=clock, heartbeat=False)
    app = GmApp(workspace, {})
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        await until(pilot, lambda: screen.table().row_count == 2, "two runs")
        tasks = {str(screen.table().get_row_at(i)[7]) for i in range(2)}
        assert tasks == {"Fix the [/] handling", "Style [red]this[/red]"}
        await pilot.press("slash", *"Fix", "enter")  # hides the selected (newest) run
        await until(pilot, lambda: screen.table().row_count == 1, "the filtered list")
        assert app.is_running
        assert isinstance(screen.table().get_row_at(0)[7], Text)


def test_a_child_that_crashed_with_exit_1_is_reported_and_a_failed_run_is_not(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    from gm_agent.tui._spawn import Child, Children

    def child(name: str, code: str) -> Child:
        log = tmp_path / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=out)
        process.wait()
        return Child(name, process, log)

    crashed = child("crash", "raise RuntimeError('boom')")
    failed = child("failed", "import sys; print('gm: run failed'); sys.exit(1)")
    assert crashed.process.returncode == failed.process.returncode == 1
    children = Children(tmp_path, {})
    children.running = [crashed, failed]
    assert children.reap() == [crashed]
    assert children.running == []


async def test_the_runs_list_shows_child_runs_under_their_parent(workspace: Path) -> None:
    from gm_agent.events import RunCreated, new_event
    from gm_agent.journal import Journal

    clock = FakeClock()

    def created(run_id: str, parent: str | None) -> Any:
        data = RunCreated(
            task=run_id, model="m", max_steps=3, workspace=str(workspace), parent_run=parent
        )
        return new_event(clock, run_id, "kernel", data)

    async with await Journal.open(workspace / ".gm" / "journal.db", clock=clock) as journal:
        await journal.append([created("P", None), created("C1", "P"), created("C2", "P")])
        await journal.append([created("Q", None)])
    app = GmApp(workspace, {})
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        table = screen.table()
        await until(pilot, lambda: table.row_count == 4, "the runs")
        ids = [str(table.get_row_at(i)[0]) for i in range(4)]
    assert ids == ["Q", "P", "├ C1", "└ C2"]  # newest first; children under their parent
