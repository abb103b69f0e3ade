"""Agent steps and the fallback are runs of their own, driven by their scheme run:
stopping or resuming the scheme run stops or resumes them, a finished one is
never done again, and `gm undo` of the scheme run takes their changes away too."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import anyio
import pytest

from gm_agent.clock import SystemClock
from gm_agent.journal import Journal
from gm_agent.kernel import resumable_runs
from gm_agent.settings import load_settings
from gm_agent.triggers.daemon import _Daemon  # pyright: ignore[reportPrivateUsage]
from tests.conftest import gm, gm_process
from tests.helpers import await_condition, kinds, ledger, of_kind, runs, stopped, write_script
from tests.schemes.helpers import agent_run_ids, scheme_run_id, write_scheme

pytestmark = pytest.mark.sandbox

AGENT = """\
- name: fix
  agent:
    task: "do it"
    tools: [run_shell]
"""

ASK_FOR_ECHO = '[[policy.rules]]\ntool = "run_shell"\nmatch = "echo *"\naction = "ask"\n'


def script(workspace: Path, command: str) -> str:
    """A scripted model that runs ``command``, then finishes; its model name."""
    moves = [
        {"tool_calls": [{"name": "run_shell", "args": {"command": command}}]},
        {"finish": "done"},
    ]
    return f"scripted:{write_script(workspace.parent / 'moves.yaml', moves)}"


def start_blocked_agent(workspace: Path) -> subprocess.Popen[str]:
    """``gm scheme run ag`` in the background, once its agent step's command has
    started (it appends ``agent`` to the ledger, then waits for a file ``go``)."""
    write_scheme(workspace, "ag", AGENT)
    model = script(workspace, "echo agent >> ledger; while [ ! -f go ]; do sleep 0.1; done")
    process = gm_process("scheme", "run", "ag", "--model", model, "--yes", cwd=workspace)
    try:
        await_condition("the agent's command", lambda: "agent" in ledger(workspace), process)
    except BaseException:
        stopped(process)
        raise
    return process


def statuses(workspace: Path) -> dict[str, str]:
    return {r["run_id"]: r["status"] for r in runs(workspace)}


def test_an_agent_run_answered_and_finished_meanwhile_is_served_not_done_again(
    workspace: Path,
) -> None:
    (workspace / "gm.toml").write_text(ASK_FOR_ECHO)
    write_scheme(workspace, "ag", AGENT)
    model = script(workspace, "echo agent-work >> ledger")

    asked = gm("scheme", "run", "ag", "--model", model, cwd=workspace)

    assert asked.returncode == 3, asked.stdout + asked.stderr
    run_id, (child,) = scheme_run_id(workspace), agent_run_ids(workspace)
    assert gm("approve", child, cwd=workspace).returncode == 0
    assert gm("resume", child, cwd=workspace).returncode == 0  # the person finished it there

    resumed = gm("resume", run_id, cwd=workspace)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert agent_run_ids(workspace) == [child]  # no second agent run
    assert ledger(workspace) == ["agent-work"]
    results = of_kind(workspace, run_id, "job.result")
    assert [(r["key"], r["ok"]) for r in results] == [
        (f"{run_id}/scheme/fix/1", False),
        (f"{run_id}/scheme/fix/2", True),
    ]
    assert results[1]["output"] == "done"


def test_a_fallback_waiting_for_a_person_goes_on_with_the_same_agent_run(
    workspace: Path,
) -> None:
    (workspace / "gm.toml").write_text(ASK_FOR_ECHO)
    write_scheme(
        workspace,
        "ship",
        """\
        - name: build
          shell: "exit 2"
          on_error: fallback
        """,
    )
    model = script(workspace, "echo fixed >> ledger")

    asked = gm("scheme", "run", "ship", "--model", model, cwd=workspace)

    assert asked.returncode == 3, asked.stdout + asked.stderr
    run_id, (child,) = scheme_run_id(workspace), agent_run_ids(workspace)
    assert gm("approve", child, cwd=workspace).returncode == 0
    assert gm("resume", child, cwd=workspace).returncode == 0

    resumed = gm("resume", run_id, cwd=workspace)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert agent_run_ids(workspace) == [child]
    assert ledger(workspace) == ["fixed"]
    assert statuses(workspace)[run_id] == "succeeded"


@pytest.mark.anyio
async def test_a_fallback_that_ended_before_a_crash_is_served_on_resume(workspace: Path) -> None:
    write_scheme(workspace, "ship", '- name: build\n  shell: "exit 2"\n  on_error: fallback\n')
    model = f"scripted:{write_script(workspace.parent / 'm.yaml', [{'finish': 'took over'}])}"
    assert gm("scheme", "run", "ship", "--model", model, cwd=workspace).returncode == 0
    run_id, (child,) = scheme_run_id(workspace), agent_run_ids(workspace)
    # The journal as a crash between the fallback's job.result and run.finished leaves it.
    await cut_after_last(workspace, run_id, "job.result")
    assert statuses(workspace)[run_id] == "running"

    resumed = gm("resume", run_id, cwd=workspace)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert agent_run_ids(workspace) == [child]  # served: no second fallback run
    assert "the fallback agent run" in resumed.stdout and "took over" in resumed.stdout


async def cut_after_last(workspace: Path, run_id: str, kind: str) -> None:
    """Rebuild the workspace's journal without run ``run_id``'s events after its
    last ``kind`` event (and without checkpoints): what a crash there leaves."""
    path = load_settings(workspace, {}).journal_path
    old = path.with_name("before-the-cut.db")
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{path}{suffix}").exists():
            Path(f"{path}{suffix}").rename(f"{old}{suffix}")
    clock = SystemClock()
    async with await Journal.open(old, clock=clock) as before:
        every = await before.read()
        cut = max(e.seq or 0 for e in every if e.run_id == run_id and e.kind == kind)
        kept = [
            e.model_copy(update={"seq": None})
            for e in every
            if e.kind != "checkpoint.saved" and not (e.run_id == run_id and (e.seq or 0) > cut)
        ]
        async with await Journal.open(path, clock=clock) as after:
            await after.append(kept)


def test_cancelling_the_scheme_run_cancels_its_agent_run(workspace: Path) -> None:
    process = start_blocked_agent(workspace)
    try:
        run_id = scheme_run_id(workspace)

        cancelled = gm("cancel", run_id, cwd=workspace)

        assert cancelled.returncode == 0, cancelled.stderr
        process.communicate(timeout=60)
        assert process.returncode == 1
    finally:
        stopped(process)
        (workspace / "go").touch()
    (child,) = agent_run_ids(workspace)
    assert statuses(workspace) == {run_id: "cancelled", child: "cancelled"}
    assert of_kind(workspace, child, "run.cancel") != []
    left = gm("resume", "--all", cwd=workspace)
    assert "nothing to resume" in left.stderr


def test_a_scheme_run_stopped_by_ctrl_c_is_cancelled_with_its_agent_run(
    workspace: Path,
) -> None:
    process = start_blocked_agent(workspace)
    try:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
    finally:
        stopped(process)
        (workspace / "go").touch()
    assert process.returncode == 130
    run_id, (child,) = scheme_run_id(workspace), agent_run_ids(workspace)
    assert statuses(workspace) == {run_id: "paused", child: "paused"}

    cancelled = gm("cancel", run_id, cwd=workspace)

    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    assert statuses(workspace) == {run_id: "cancelled", child: "cancelled"}
    undone = gm("undo", run_id, cwd=workspace)  # what the cut-off command wrote, too
    assert undone.returncode == 0, undone.stderr
    assert ledger(workspace) == []


def test_interrupting_the_scheme_run_pauses_its_agent_run_and_resume_goes_on_with_it(
    workspace: Path,
) -> None:
    process = start_blocked_agent(workspace)
    try:
        run_id, (child,) = scheme_run_id(workspace), agent_run_ids(workspace)
        interrupt = gm_process("interrupt", run_id, cwd=workspace)
        try:
            await_condition(
                "the interrupt reaching the agent run",
                lambda: "run.interrupt" in kinds(workspace, child),
            )
            (workspace / "go").touch()  # a command is let finish; the runs pause after it
            process.communicate(timeout=60)
            interrupt.communicate(timeout=60)
        finally:
            stopped(interrupt)
        assert (process.returncode, interrupt.returncode) == (130, 0)
    finally:
        stopped(process)
        (workspace / "go").touch()
    assert statuses(workspace) == {run_id: "paused", child: "paused"}
    assert of_kind(workspace, run_id, "job.result") == []  # cut off, not failed

    resumed = gm("resume", run_id, "--yes", cwd=workspace)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert agent_run_ids(workspace) == [child]
    assert statuses(workspace) == {run_id: "succeeded", child: "succeeded"}
    assert ledger(workspace) == ["agent"]


def test_after_a_kill_only_the_scheme_run_is_resumed_and_it_drives_its_agent_run(
    workspace: Path,
) -> None:
    process = start_blocked_agent(workspace)
    try:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
    finally:
        stopped(process)
        (workspace / "go").touch()
    run_id, (child,) = scheme_run_id(workspace), agent_run_ids(workspace)
    assert {r["run_id"] for r in runs(workspace) if r["orphaned"]} == {run_id, child}
    assert anyio.run(resumable_runs, workspace, {}) == [run_id]
    assert anyio.run(adopted_by_serve, workspace) == [run_id]

    resumed = gm("resume", "--all", "--yes", cwd=workspace)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert statuses(workspace) == {run_id: "succeeded", child: "succeeded"}


async def adopted_by_serve(workspace: Path) -> list[str]:
    """The runs `gm serve`'s first look for orphans would take over (none is run)."""
    adopted: list[str] = []

    class Launcher:
        async def adopt(self, run_id: str, trigger: str | None) -> bool:
            adopted.append(run_id)
            return True

    class Clock(SystemClock):
        async def sleep(self, seconds: float) -> None:
            raise anyio.get_cancelled_exc_class()()  # after the first look

    settings = load_settings(workspace, {})
    async with await Journal.open(settings.journal_path, create=False) as journal:
        daemon = _Daemon(Launcher(), journal, Clock())  # type: ignore[arg-type]
        with pytest.raises(anyio.get_cancelled_exc_class()):
            await daemon.adopt_orphans(3600)
    return adopted


def test_undo_of_a_scheme_run_takes_its_agent_runs_changes_away_too(workspace: Path) -> None:
    write_scheme(
        workspace,
        "ag",
        """\
        - name: pre
          shell: "echo pre >> ledger"
        - name: fix
          depends_on: [pre]
          agent:
            task: "do it"
            tools: [run_shell]
        """,
    )
    model = script(workspace, "echo agent > agentfile")
    assert gm("scheme", "run", "ag", "--model", model, "--yes", cwd=workspace).returncode == 0
    run_id = scheme_run_id(workspace)

    undone = gm("undo", run_id, cwd=workspace)

    assert undone.returncode == 0, undone.stderr
    assert "reverted 2 patches" in undone.stdout
    assert sorted(p.name for p in workspace.iterdir() if p.name != ".gm") == []
    assert "agentfile" not in gm("diff", run_id, cwd=workspace).stdout

    redone = gm("redo", run_id, cwd=workspace)

    assert redone.returncode == 0, redone.stderr
    assert (workspace / "agentfile").read_text() == "agent\n"
    assert ledger(workspace) == ["pre"]
    assert "agentfile" in gm("diff", run_id, cwd=workspace).stdout
