"""`gm tui` in a real terminal (tmux) beside a real run in another process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import gm, gm_process
from tests.helpers import write_script, write_task

pytestmark = [pytest.mark.tmux, pytest.mark.sandbox]

TMUX = ["tmux", "-L", f"gm-test-{os.getpid()}", "-f", "/dev/null"]
"""A tmux server of this test's own, with no user configuration."""


def screen(session: str) -> str:
    return subprocess.run(
        [*TMUX, "capture-pane", "-p", "-t", session], capture_output=True, text=True, check=True
    ).stdout


def wait_for_screen(session: str, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    shown = ""
    while time.monotonic() < deadline:
        shown = screen(session)
        if text in shown:
            return shown
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared; the screen:\n{shown}")


def test_the_tui_shows_a_live_run_and_its_approve_key_releases_the_waiting_call(
    workspace: Path,
) -> None:
    script = write_script(
        workspace.parent / "moves.yaml",
        [
            {
                "text": "Checking the machine.",
                "tool_calls": [{"name": "run_shell", "args": {"command": "echo from-the-shell"}}],
            },
            {"finish": "checked"},
        ],
    )
    task = write_task(
        workspace.parent / "task.md",
        "Check.",
        model=f"scripted:{script}",
        policy={"rules": [{"tool": "run_shell", "action": "ask"}]},
    )
    run = gm_process("run", str(task), "--wait-for-approval", cwd=workspace)
    session = "gm-tui"
    try:
        deadline = time.monotonic() + 30
        while "waiting" not in gm("runs", cwd=workspace).stdout and time.monotonic() < deadline:
            time.sleep(0.1)  # the run is journaled and asks for its approval
        command = f"{sys.executable} -m gm_agent tui last"
        size = ["-x", "100", "-y", "30"]
        subprocess.run(
            [*TMUX, "new-session", "-d", "-s", session, *size, "-c", str(workspace), command],
            check=True,
        )
        wait_for_screen(session, "Checking the machine.")  # the run's events, as they are journaled
        wait_for_screen(session, "run_shell waits")  # the approval bar
        subprocess.run([*TMUX, "send-keys", "-t", session, "a"], check=True)
        out, err = run.communicate(timeout=60)  # the call was released: the run goes on
        assert run.returncode == 0, out + err
        shown = wait_for_screen(session, "succeeded: checked")
        assert "from-the-shell" in shown
    finally:
        run.kill()
        subprocess.run([*TMUX, "kill-server"], check=False, capture_output=True)
