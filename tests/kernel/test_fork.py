"""`gm fork` and `gm compare`: branch a run at a seq, continue it live, and compare the two."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
from pathlib import Path
from typing import Any

import anyio

from gm_agent.clock import SystemClock
from gm_agent.events import RunForked, new_event
from gm_agent.journal import Journal
from tests.conftest import gm
from tests.helpers import write_script, write_task

PARENT: list[dict[str, Any]] = [
    {"tool_calls": [{"name": "write_file", "args": {"path": "a.txt", "content": "one\n"}}]},
    {"tool_calls": [{"name": "write_file", "args": {"path": "b.txt", "content": "two\n"}}]},
    {"tool_calls": [{"name": "run_shell", "args": {"command": "echo three > c.txt"}}]},
    {"finish": "wrote a, b and c"},
]
# A scripted model answers step N with its N-th move; the fork goes on from step 2.
FORK: list[dict[str, Any]] = [
    {"text": "(step 1 is the parent's)"},
    {"tool_calls": [{"name": "write_file", "args": {"path": "b.txt", "content": "TWO\n"}}]},
    {"finish": "wrote b differently"},
]


def parent_run(workspace: Path) -> tuple[str, list[dict[str, Any]]]:
    write_script(workspace / "moves.yaml", PARENT)
    write_script(workspace / "fork.yaml", FORK)
    task = write_task(workspace / "task.md", "Write files.", model="scripted:moves.yaml")
    result = gm("run", str(task), "--json", cwd=workspace)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    return events[0]["run_id"], events


def after_step_1(events: list[dict[str, Any]]) -> int:
    """The seq of step 1's tool result: a safe point between steps."""
    return next(e["seq"] for e in events if e["kind"] == "tool.returned")


def log(workspace: Path, run: str) -> list[dict[str, Any]]:
    result = gm("log", run, "--json", cwd=workspace)
    return [json.loads(line) for line in result.stdout.splitlines()]


def fork(
    workspace: Path,
    run: str,
    at: int,
    *extra: str,
    script: str = "fork.yaml",
    env: dict[str, str] | None = None,
) -> Any:
    """`gm fork RUN --at AT -m scripted:SCRIPT ...` in the workspace."""
    command = ("fork", run, "--at", str(at), "-m", f"scripted:{script}", *extra)
    return gm(*command, cwd=workspace, env=env)


def test_a_fork_restores_the_files_of_its_fork_point_and_goes_on_live(workspace: Path) -> None:
    parent, events = parent_run(workspace)
    at = after_step_1(events)
    result = gm("fork", parent, "--at", str(at), "--model", "scripted:fork.yaml", cwd=workspace)
    assert result.returncode == 0, result.stderr
    assert f"fork of {parent} at seq {at}" in result.stdout
    assert log(workspace, parent) == events  # the parent is unchanged
    # At seq `at` only a.txt existed; the fork then wrote its own b.txt.
    assert (workspace / "a.txt").read_text() == "one\n"
    assert (workspace / "b.txt").read_text() == "TWO\n"
    assert not (workspace / "c.txt").exists()
    fork = log(workspace, "last")
    assert fork[0]["kind"] == "run.forked"
    assert (fork[0]["data"]["parent_id"], fork[0]["data"]["fork_seq"]) == (parent, at)
    restore = next(e for e in fork if e["kind"] == "patch.applied")
    assert {(f["path"], f["op"]) for f in restore["data"]["files"]} == {
        ("b.txt", "delete"),
        ("c.txt", "delete"),
    }
    assert not any(e["run_id"] == parent for e in fork)  # the history is referenced, not copied


def test_runs_shows_the_parent_and_the_fork_point(workspace: Path) -> None:
    parent, events = parent_run(workspace)
    at = after_step_1(events)
    gm("fork", parent, "--at", str(at), "-m", "scripted:fork.yaml", cwd=workspace)
    listing = gm("runs", cwd=workspace).stdout.splitlines()
    assert listing[1].endswith(f"↳ fork of {parent}@{at}")
    rows = [json.loads(line) for line in gm("runs", "--json", cwd=workspace).stdout.splitlines()]
    assert (rows[0]["parent_id"], rows[0]["fork_seq"]) == (parent, at)
    status = gm("status", "last", cwd=workspace).stdout
    assert f"fork of  {parent} at seq {at}" in status
    assert "steps    3 of 30" in status  # the parent's step 1, then its own two


def test_undoing_a_fork_brings_back_the_parents_result(workspace: Path) -> None:
    parent, events = parent_run(workspace)
    gm("fork", parent, "--at", str(after_step_1(events)), "-m", "scripted:fork.yaml", cwd=workspace)
    undone = gm("undo", "last", cwd=workspace)
    assert undone.returncode == 0, undone.stderr
    assert (workspace / "b.txt").read_text() == "two\n"
    assert (workspace / "c.txt").read_text() == "three\n"


def test_a_fork_refuses_to_overwrite_files_edited_since_unless_forced(workspace: Path) -> None:
    parent, events = parent_run(workspace)
    (workspace / "c.txt").write_text("my edit\n")
    at = str(after_step_1(events))
    refused = gm("fork", parent, "--at", at, "-m", "scripted:fork.yaml", cwd=workspace)
    assert refused.returncode == 2
    assert f"'c.txt' changed since run {parent} changed it" in refused.stderr
    assert "nothing was recorded" in refused.stderr
    assert len(gm("runs", "--json", cwd=workspace).stdout.splitlines()) == 1
    assert (workspace / "c.txt").read_text() == "my edit\n"
    forced = gm("fork", parent, "--at", at, "-m", "scripted:fork.yaml", "--force", cwd=workspace)
    assert forced.returncode == 0, forced.stderr
    assert not (workspace / "c.txt").exists()


def test_a_fork_point_inside_a_tool_call_is_refused_with_the_nearest_safe_point(
    workspace: Path,
) -> None:
    parent, events = parent_run(workspace)
    inside = next(e["seq"] for e in events if e["kind"] == "patch.intent")
    result = gm("fork", parent, "--at", str(inside), cwd=workspace)
    assert result.returncode == 2
    assert f"seq {inside} of run {parent} is in the middle of a tool call" in result.stderr
    assert "the nearest earlier safe point is seq" in result.stderr


def test_a_fork_message_reaches_the_model_after_the_fork_point(workspace: Path) -> None:
    parent, events = parent_run(workspace)
    result = fork(workspace, parent, after_step_1(events), "--message", "Use caps.")
    assert result.returncode == 0, result.stderr
    forked = log(workspace, "last")
    assert [e["kind"] for e in forked[:2]] == ["run.forked", "user.message"]
    assert forked[1]["data"]["text"] == "Use caps."
    exported = gm("export", "last", cwd=workspace).stdout
    assert exported.index("Write files.") < exported.index("Use caps.")  # the whole history


def test_replay_of_a_fork_folds_its_parents_prefix_then_its_own_events(workspace: Path) -> None:
    parent, events = parent_run(workspace)
    at = after_step_1(events)
    gm("fork", parent, "--at", str(at), "-m", "scripted:fork.yaml", cwd=workspace)
    for check in (("replay", "last", "-q"), ("replay", "last", "--recorded", "-q")):
        result = gm(*check, cwd=workspace)
        assert result.returncode == 0, result.stderr
    # A change to the parent after the fork point is not the fork's history.
    with sqlite3.connect(workspace / ".gm" / "journal.db") as conn:
        conn.execute("DROP TRIGGER events_no_update")
        conn.execute("UPDATE events SET data = '{' WHERE seq = ?", (at + 3,))
    assert gm("replay", "last", "-q", cwd=workspace).returncode == 0
    assert gm("replay", parent, "-q", cwd=workspace).returncode == 1


def test_compare_names_the_first_differing_step_the_tokens_and_the_files(workspace: Path) -> None:
    parent, events = parent_run(workspace)
    gm("fork", parent, "--at", str(after_step_1(events)), "-m", "scripted:fork.yaml", cwd=workspace)
    result = gm("compare", parent, "last", cwd=workspace)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "steps: the same up to step 1; the moves differ at step 2" in out
    assert '→ write_file(content="two\\n", path="b.txt")' in out
    assert '→ write_file(content="TWO\\n", path="b.txt")' in out
    assert "tokens" in out and "A ended succeeded: wrote a, b and c" in out
    assert "B ended succeeded: wrote b differently" in out
    assert "A from step 2: write_file ×1, run_shell ×1, finish ×1 (0 failed)" in out
    assert "B from step 2: write_file ×1, finish ×1 (0 failed)" in out
    assert "-two\n+TWO" in out  # b.txt from A's result to B's
    assert "--- a/c.txt" in out  # c.txt exists only in A's result
    stat = gm("compare", parent, "last", "--stat", cwd=workspace).stdout
    assert " b.txt | +1 -1" in stat and " c.txt | +0 -1" in stat
    same = gm("compare", parent, parent, cwd=workspace).stdout
    assert "steps: the same 4 steps" in same and "both runs left the workspace the same" in same


def test_a_fork_point_after_an_undo_keeps_what_the_undo_reverted_reverted(
    workspace: Path,
) -> None:
    (workspace / "gm.toml").write_text("[checkpoint]\nevery_steps = 1\n")
    write = lambda name: {  # noqa: E731
        "tool_calls": [{"name": "write_file", "args": {"path": name, "content": f"{name}\n"}}]
    }
    write_script(workspace / "moves.yaml", [write("a"), write("b"), write("c"), {"finish": "ok"}])
    write_script(workspace / "fork.yaml", [{}, {}, {}, {"finish": "forked"}])
    task = write_task(workspace / "task.md", "Write.", model="scripted:moves.yaml")
    crashed = gm("run", str(task), cwd=workspace, env={"GM_CRASH_AT": "checkpoint.after_save:2"})
    assert crashed.returncode == -signal.SIGKILL  # after a and b were written
    applied = [e for e in log(workspace, "last") if e["kind"] == "patch.applied"]
    assert gm("undo", "last", "--to", str(applied[0]["seq"]), cwd=workspace).returncode == 0
    assert gm("resume", "last", cwd=workspace).returncode == 0  # then c, then finish
    events = log(workspace, "last")
    after_c = [e["seq"] for e in events if e["kind"] == "tool.returned"][-2]
    assert fork(workspace, "last", after_c).returncode == 0
    assert sorted(p.name for p in workspace.glob("?")) == ["a", "c"]  # b stays undone


def test_a_fork_of_a_fork_at_its_first_event_gets_the_files_of_that_fork_point(
    workspace: Path,
) -> None:
    parent, events = parent_run(workspace)
    at = after_step_1(events)
    assert fork(workspace, parent, at).returncode == 0
    first = log(workspace, "last")
    grandchild = fork(workspace, first[0]["run_id"], first[0]["seq"], script="moves.yaml")
    assert grandchild.returncode == 0, grandchild.stderr
    # The files at the first fork's point: a.txt only, then the script's own writes.
    assert (workspace / "a.txt").read_text() == "one\n"
    assert (workspace / "b.txt").read_text() == "two\n"  # step 2 of moves.yaml
    assert (workspace / "c.txt").read_text() == "three\n"  # step 3 of moves.yaml


def test_a_second_fork_over_the_first_is_refused_and_forced_keeps_undo_exact(
    workspace: Path,
) -> None:
    parent, events = parent_run(workspace)
    at = after_step_1(events)
    assert fork(workspace, parent, at).returncode == 0  # b.txt is now "TWO"
    refused = fork(workspace, parent, at)
    assert refused.returncode == 2
    assert "another run such as an earlier fork: `gm undo` it first" in refused.stderr
    forced = fork(workspace, parent, at, "--force", "--message", "again")
    assert forced.returncode == 0, forced.stderr
    assert gm("undo", "last", cwd=workspace).returncode == 0
    assert (workspace / "b.txt").read_text() == "TWO\n"  # the first fork's, byte for byte


def test_a_parent_stopped_in_the_middle_of_a_change_must_be_resumed_first(
    workspace: Path,
) -> None:
    write_script(workspace / "moves.yaml", PARENT)
    task = write_task(workspace / "task.md", "Write.", model="scripted:moves.yaml")
    crashed = gm("run", str(task), cwd=workspace, env={"GM_CRASH_AT": "patch.after_write:2"})
    assert crashed.returncode == -signal.SIGKILL
    result = gm("fork", "last", "--at", "10", cwd=workspace)
    assert result.returncode == 2
    assert "stopped in the middle of a change; run `gm resume" in result.stderr


def test_a_fork_in_a_copied_project_is_refused(workspace: Path) -> None:
    parent, events = parent_run(workspace)
    copy = workspace.parent / "copy"
    shutil.copytree(workspace, copy)
    result = fork(copy, parent, after_step_1(events))
    assert result.returncode == 2
    assert "was the project moved or copied?" in result.stderr


def test_fork_points_that_are_not_the_parents_safe_events_are_refused(workspace: Path) -> None:
    parent, events = parent_run(workspace)
    last = events[-1]["seq"]
    for at, message in [
        (0, f"seq 0 is not an event of run {parent} (its events are seqs 1 to {last}"),
        (last + 5, f"seq {last + 5} is not an event of run {parent}"),
        (1, f"seq 1 comes before run {parent} was given its task"),
    ]:
        result = gm("fork", parent, "--at", str(at), cwd=workspace)
        assert result.returncode == 2 and message in result.stderr, (at, result.stderr)
    fork(workspace, parent, after_step_1(events))
    child = log(workspace, "last")
    inherited = gm("fork", child[0]["run_id"], "--at", "3", cwd=workspace)
    assert f"fork that one (`gm fork {parent} --at 3`)" in inherited.stderr


def test_a_fork_that_cannot_restore_fails_clearly_and_a_cut_off_fork_is_resumable(
    workspace: Path,
) -> None:
    parent, events = parent_run(workspace)
    at = after_step_1(events)

    async def record_fork_without_running_it() -> None:
        async with await Journal.open(workspace / ".gm" / "journal.db") as journal:
            forked = RunForked(
                parent_id=parent,
                fork_seq=at,
                task="t",
                model=f"scripted:{workspace / 'fork.yaml'}",
                max_steps=9,
            )
            await journal.append([new_event(SystemClock(), "FORK", "user", forked)])

    anyio.run(record_fork_without_running_it)  # as if `gm fork` died right after
    (workspace / "c.txt").write_text("my edit\n")
    assert "orphaned" in gm("runs", cwd=workspace).stdout.splitlines()[1]
    resumed = gm("resume", "--all", cwd=workspace)
    assert resumed.returncode == 1
    assert "failed: cannot restore the fork point: 'c.txt' changed since" in resumed.stdout
    assert (workspace / "c.txt").read_text() == "my edit\n"


def test_a_forks_scripted_model_is_found_again_from_anywhere(workspace: Path) -> None:
    parent, events = parent_run(workspace)
    crashed = fork(
        workspace, parent, after_step_1(events), env={"GM_CRASH_AT": "job.after_intent:1"}
    )
    assert crashed.returncode == -signal.SIGKILL
    resumed = gm("-C", str(workspace), "resume", "last", cwd=Path(os.sep))
    assert resumed.returncode == 0, resumed.stderr
