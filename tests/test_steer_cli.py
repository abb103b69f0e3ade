"""`gm send`, `gm interrupt`, `gm resume` and `gm cancel` against a `gm run` in
another process, as a person in a second terminal would use them."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import gm, gm_process
from tests.helpers import write_script, write_task

pytestmark = pytest.mark.sandbox


def start_run(workspace: Path, moves: list[dict[str, object]]) -> subprocess.Popen[str]:
    script = write_script(workspace.parent / "moves.yaml", moves)
    task = write_task(workspace.parent / "task.md", "Work.", model=f"scripted:{script}")
    return gm_process("run", str(task), cwd=workspace)


def kinds(workspace: Path) -> list[str]:
    logged = gm("log", "--json", "last", cwd=workspace)
    return [json.loads(line)["kind"] for line in logged.stdout.splitlines()]


def wait_for_shell(workspace: Path) -> None:
    """Until the run's shell command has started."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (workspace / ".gm" / "journal.db").exists() and kinds(workspace).count(
            "job.intent"
        ) >= 2:
            return
        time.sleep(0.1)
    raise AssertionError("the run never started its command")


def test_cancel_kills_the_command_of_a_run_in_another_process(workspace: Path) -> None:
    run = start_run(
        workspace,
        [{"tool_calls": [{"name": "run_shell", "args": {"command": "sleep 61 && touch late"}}]}],
    )
    try:
        wait_for_shell(workspace)
        cancelled = gm("cancel", "last", "--reason", "wrong task", cwd=workspace)
        out, err = run.communicate(timeout=30)
    finally:
        run.kill()
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout, cancelled.stderr
    assert run.returncode == 1, out + err
    assert "cancelled: cancelled by the user: wrong task" in out
    assert not (workspace / "late").exists()
    alive = subprocess.run(["pgrep", "-f", "sleep 61"], capture_output=True, check=False)
    assert alive.returncode == 1, alive.stdout  # the command's whole process group is gone
    assert kinds(workspace)[-5:] == [
        "job.cancelled",
        "tool.returned",  # the cut-off call is closed: the run ends at rest
        "run.status_changed",
        "run.finished",
        "checkpoint.saved",
    ]


def test_interrupt_then_send_then_resume(workspace: Path) -> None:
    run = start_run(
        workspace,
        [
            # long enough for `gm interrupt` to start on a loaded machine
            {"tool_calls": [{"name": "run_shell", "args": {"command": "sleep 3"}}]},
            {"finish": "done after the break"},
        ],
    )
    try:
        wait_for_shell(workspace)
        interrupted = gm("interrupt", "last", cwd=workspace)
        out, err = run.communicate(timeout=30)
    finally:
        run.kill()
    assert run.returncode == 130, out + err  # paused after the command finished
    assert "paused; continue it with `gm resume" in interrupted.stdout, interrupted.stderr
    secret = {"DEPLOY_TOKEN": "tok-0123456789abcdef"}
    sent = gm("send", "last", "also tidy up", cwd=workspace)
    assert "it takes the message when you `gm resume" in sent.stdout, sent.stderr
    leaked = gm("send", "last", "use tok-0123456789abcdef", cwd=workspace, env=secret)
    assert leaked.returncode == 0, leaked.stderr
    resumed = gm("resume", "last", cwd=workspace)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    logged = [
        json.loads(line) for line in gm("log", "--json", "last", cwd=workspace).stdout.splitlines()
    ]
    messages = [e["data"]["text"] for e in logged if e["kind"] == "user.message"]
    assert messages == ["Work.", "also tidy up", "use [redacted: DEPLOY_TOKEN]"]  # never journaled
    assert logged[-2]["data"]["summary"] == "done after the break"


def test_steering_a_run_that_ended_or_does_not_exist_is_a_usage_error(workspace: Path) -> None:
    run = start_run(workspace, [{"finish": "quick"}])
    run.communicate(timeout=60)
    assert run.returncode == 0
    for command in (["send", "last", "hi"], ["cancel", "last"], ["interrupt", "last"]):
        result = gm(*command, cwd=workspace)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "succeeded" in result.stderr
    missing = gm("send", "01NOPE", "hi", cwd=workspace)
    assert missing.returncode == 2 and "01NOPE" in missing.stderr


def test_cancelling_a_crashed_run_settles_the_cut_off_command_first(workspace: Path) -> None:
    script = write_script(
        workspace.parent / "moves.yaml",
        [{"tool_calls": [{"name": "run_shell", "args": {"command": "echo hi > out.txt"}}]}],
    )
    task = write_task(workspace.parent / "task.md", "Work.", model=f"scripted:{script}")
    crashed = gm("run", str(task), cwd=workspace, env={"GM_CRASH_AT": "job.after_intent:2"})
    assert crashed.returncode == -9, crashed.stderr  # killed with the command's intent journaled
    cancelled = gm("cancel", "last", "--reason", "not needed", cwd=workspace)
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout, cancelled.stderr
    ended = kinds(workspace)
    assert "job.ambiguous" in ended  # never re-run, never silently dropped
    assert ended[-3:] == ["run.status_changed", "run.finished", "checkpoint.saved"]
    replayed = gm("replay", "last", "-q", cwd=workspace)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
