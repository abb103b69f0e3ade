"""A scheme run stopped in the middle of a step (Ctrl-C, a kill, a crash, a held
writer lock) goes on where it stopped: a step cut off by a stop is never counted
as failed, whatever its `on_error`, and nothing it did is left out of the journal."""

from __future__ import annotations

import fcntl
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gm_agent.clock import FakeClock
from gm_agent.kernel import run_scheme
from tests.conftest import gm, gm_process
from tests.helpers import await_condition, kinds, ledger, of_kind, stopped, write_script
from tests.schemes.helpers import agent_run_ids, scheme_run_id, write_scheme

pytestmark = pytest.mark.sandbox

WAITS = "echo {word} >> ledger; while [ ! -f go ]; do sleep 0.1; done; echo {word}-done >> ledger"
"""A command that notes it started, then runs until the test creates `go`."""


def stop_in(workspace: Path, word: str, how: signal.Signals, *args: str) -> int:
    """Start `gm scheme run ARGS`, send ``how`` once a step wrote ``word`` to the
    ledger, and return gm's exit code; then let the command end (``go``)."""
    process = gm_process("scheme", "run", *args, cwd=workspace)
    try:
        await_condition(f"{word!r} in the ledger", lambda: word in ledger(workspace), process)
        process.send_signal(how)
        process.communicate(timeout=60)
    finally:
        stopped(process)
        (workspace / "go").touch()
    return process.returncode


@pytest.mark.parametrize("on_error", ["continue", "fallback"])
def test_a_step_cut_off_by_ctrl_c_runs_again_on_resume_and_never_counts_as_failed(
    workspace: Path, on_error: str
) -> None:
    write_scheme(
        workspace,
        "s",
        f"""\
        - name: test
          shell: "{WAITS.format(word="test")}"
          on_error: {on_error}
        - name: fix
          depends_on: [test]
          when: "{{{{ steps.test.failed }}}}"
          shell: "echo FIX >> ledger"
        """,
    )
    script = write_script(workspace.parent / "moves.yaml", [{"finish": "took over"}])
    model = f"scripted:{script}"

    assert stop_in(workspace, "test", signal.SIGINT, "s", "--model", model) == 130
    run_id = scheme_run_id(workspace)
    assert "job.cancelled" in kinds(workspace, run_id)

    resumed = gm("resume", run_id, cwd=workspace)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert ledger(workspace) == ["test", "test", "test-done"]  # run again; no FIX, no fallback
    keys = [i["key"] for i in of_kind(workspace, run_id, "job.intent")]
    assert keys == [f"{run_id}/scheme/test/1", f"{run_id}/scheme/test/2"]
    assert agent_run_ids(workspace) == []
    (finished,) = of_kind(workspace, run_id, "run.finished")
    assert finished["summary"].startswith("scheme s: 1 steps succeeded, 1 skipped")


def test_after_sigkill_a_step_whose_outcome_is_unknown_blocks_even_with_on_error_continue(
    workspace: Path,
) -> None:
    write_scheme(
        workspace,
        "s",
        f"""\
        - name: migrate
          shell: "{WAITS.format(word="migrate")}"
          on_error: continue
        - name: after
          depends_on: [migrate]
          shell: "echo after >> ledger"
        """,
    )
    assert stop_in(workspace, "migrate", signal.SIGKILL, "s") == -signal.SIGKILL
    run_id = scheme_run_id(workspace)

    blocked = gm("resume", run_id, cwd=workspace)

    assert blocked.returncode == 3, blocked.stdout + blocked.stderr
    assert "step 'migrate': outcome unknown" in blocked.stderr
    assert ledger(workspace) == ["migrate"]  # not counted as failed: `after` did not run either

    checked = gm("resume", run_id, cwd=workspace)  # a person checked: run it again

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert ledger(workspace) == ["migrate", "migrate", "migrate-done", "after"]


def test_a_write_cut_off_by_a_crash_is_completed_and_the_run_can_be_undone(
    workspace: Path,
) -> None:
    write_scheme(
        workspace,
        "w",
        """\
        - name: write
          tool: {name: write_file, args: {path: out.txt, content: "new\\n"}}
        - name: after
          depends_on: [write]
          shell: "echo after >> ledger"
        """,
    )
    crashed = gm("scheme", "run", "w", cwd=workspace, env={"GM_CRASH_AT": "patch.after_write"})
    assert crashed.returncode == -signal.SIGKILL
    run_id = scheme_run_id(workspace)

    resumed = gm("resume", run_id, cwd=workspace)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    seen = kinds(workspace, run_id)
    assert seen.count("patch.intent") == 1 and "job.ambiguous" not in seen
    assert seen[-1] == "checkpoint.saved"  # at rest: nothing left half done
    write, _ = of_kind(workspace, run_id, "job.result")
    assert (write["kind"], write["ok"], write["output"]) == ("tool", True, "create out.txt")
    assert ledger(workspace) == ["after"]
    undone = gm("undo", run_id, cwd=workspace)
    assert undone.returncode == 0, undone.stderr
    assert not (workspace / "out.txt").exists() and not (workspace / "ledger").exists()


@contextmanager
def writer_lock_held(workspace: Path, holder: str) -> Iterator[None]:
    """Hold the workspace writer lock as another gm process would."""
    path = workspace / ".gm" / "writer.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, holder.encode())
        yield
    finally:
        os.close(fd)


@pytest.mark.anyio
async def test_a_writer_lock_held_too_long_fails_the_step_saying_so(workspace: Path) -> None:
    write_scheme(workspace, "s", "- name: a\n  shell: echo a >> ledger\n")

    with writer_lock_held(workspace, "another gm run"):
        # The fake clock's sleeps return at once: the 60 s wait for the lock is instant.
        stopped = await run_scheme(
            "s", workspace=workspace, environ={}, clock=FakeClock(), heartbeat=False
        )

    assert stopped.status == "waiting"
    assert stopped.needs is not None and stopped.needs.startswith(
        "step 'a' failed (the workspace is being changed by another gm run (writer lock "
        "held for 60 s); try again when it is done); fix the cause, then `gm resume"
    )
    assert ledger(workspace) == []

    done = gm("resume", stopped.run_id, cwd=workspace)  # the lock is free now

    assert done.returncode == 0, done.stdout + done.stderr
    assert ledger(workspace) == ["a"]
