"""`gm fork` and `gm compare`: branch a run at a seq, continue it live, and compare the two."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

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
    assert "'c.txt' changed since the run changed it" in refused.stderr
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
    at = str(after_step_1(events))
    result = gm(
        "fork",
        parent,
        "--at",
        at,
        "-m",
        "scripted:fork.yaml",
        "--message",
        "Use caps.",
        cwd=workspace,
    )
    assert result.returncode == 0, result.stderr
    fork = log(workspace, "last")
    assert [e["kind"] for e in fork[:2]] == ["run.forked", "user.message"]
    assert fork[1]["data"]["text"] == "Use caps."
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
    assert "-two\n+TWO" in out  # b.txt from A's result to B's
    assert "--- a/c.txt" in out  # c.txt exists only in A's result
    stat = gm("compare", parent, "last", "--stat", cwd=workspace).stdout
    assert " b.txt | +1 -1" in stat and " c.txt | +0 -1" in stat
    same = gm("compare", parent, parent, cwd=workspace).stdout
    assert "steps: the same 4 steps" in same and "both runs left the workspace the same" in same
