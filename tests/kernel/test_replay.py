"""`gm replay`: a run folds again to its recorded hashes, and any change to the record
or to the loop's decisions is named by the seq where it happened."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gm_agent.journal import Journal
from gm_agent.kernel import replay_recorded, replay_run
from gm_agent.tools import ToolRegistry, builtin_tools
from tests.conftest import gm
from tests.helpers import write_script, write_task

pytestmark = pytest.mark.anyio

MOVES: list[dict[str, Any]] = [
    {"tool_calls": [{"name": "write_file", "args": {"path": "a.txt", "content": "one\n"}}]},
    {"tool_calls": [{"name": "run_shell", "args": {"command": "echo two > b.txt"}}]},
    {"tool_calls": [{"name": "read_file", "args": {"path": "a.txt"}}]},
    {"finish": "wrote a.txt and b.txt"},
]


def recorded_run(workspace: Path) -> str:
    (workspace / "gm.toml").write_text("[checkpoint]\nevery_steps = 1\n")
    write_script(workspace / "moves.yaml", MOVES)
    task = write_task(workspace / "task.md", "Write two files.", model="scripted:moves.yaml")
    result = gm("run", str(task), "--json", cwd=workspace)
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout.splitlines()[0])["run_id"])


def tamper(workspace: Path, sql: str, *params: object) -> Path:
    """A copy of the workspace whose journal had ``sql`` run behind gm's back."""
    copy = workspace.parent / "tampered"
    shutil.copytree(workspace, copy)
    with sqlite3.connect(copy / ".gm" / "journal.db") as conn:
        conn.execute("DROP TRIGGER events_no_update")
        conn.execute(sql, params)
    return copy


def seq_of(workspace: Path, kind: str, nth: int = 0) -> int:
    with sqlite3.connect(workspace / ".gm" / "journal.db") as conn:
        rows = conn.execute("SELECT seq FROM events WHERE kind = ? ORDER BY seq", (kind,))
        return int(list(rows)[nth][0])


def test_replay_folds_the_run_again_and_every_checkpoint_matches(workspace: Path) -> None:
    run_id = recorded_run(workspace)
    result = gm("replay", run_id, cwd=workspace)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("step 1" in line for line in lines)
    assert any('→ run_shell(command="echo two > b.txt")' in line for line in lines)
    assert any("patch: create b.txt" in line for line in lines)
    assert any("◆ checkpoint after seq" in line for line in lines)
    assert lines[-1].startswith(f"replay of run {run_id} is consistent: ")
    assert "checkpoints matching: 4" in lines[-1]  # before steps 2, 3, 4, and on exit


async def test_the_replayed_state_hash_is_the_one_the_last_checkpoint_recorded(
    workspace: Path,
) -> None:
    run_id = recorded_run(workspace)
    async with await Journal.open(workspace / ".gm" / "journal.db", read_only=True) as journal:
        report = await replay_run(journal, run_id)
        hashes = await journal.checkpoint_hashes(run_id)
    assert report.ok and report.checkpoints == len(hashes) == 4
    assert report.state_hash != ""
    last_seq = max(hashes)
    assert report.events[-1].seq == last_seq + 1  # the exit checkpoint's own event
    assert hashes[last_seq] != report.state_hash  # last_seq moved on by that event


def test_an_event_changed_behind_gms_back_fails_replay_at_its_seq(workspace: Path) -> None:
    recorded_run(workspace)
    seq = seq_of(workspace, "tool.returned", 1)
    copy = tamper(
        workspace,
        "UPDATE events SET data = replace(data, 'exit code 0', 'exit code 1') WHERE seq = ?",
        seq,
    )
    result = gm("replay", "last", "-q", cwd=copy)
    assert result.returncode == 1
    assert f"diverges at seq {seq}: the event was changed after it was written" in result.stderr
    assert gm("replay", "last", "-q", cwd=workspace).returncode == 0  # the original is fine


def test_an_unreadable_event_is_named_by_its_seq(workspace: Path) -> None:
    recorded_run(workspace)
    seq = seq_of(workspace, "model.response", 2)
    copy = tamper(workspace, "UPDATE events SET data = '{not json' WHERE seq = ?", seq)
    result = gm("replay", "last", "-q", cwd=copy)
    assert result.returncode == 1
    assert f"diverges at seq {seq}:" in result.stderr


def test_a_checkpoint_whose_hash_does_not_match_the_fold_is_named(workspace: Path) -> None:
    recorded_run(workspace)
    copy = workspace.parent / "forged"
    shutil.copytree(workspace, copy)
    with sqlite3.connect(copy / ".gm" / "journal.db") as conn:
        (upto,) = conn.execute("SELECT min(upto_seq) FROM checkpoints").fetchone()
        conn.execute("UPDATE checkpoints SET state_hash = ? WHERE upto_seq = ?", ("0" * 64, upto))
    result = gm("replay", "last", "-q", cwd=copy)
    assert result.returncode == 1
    assert f"diverges at seq {upto}: the state after this event hashes to" in result.stderr


def test_recorded_replay_makes_the_same_decisions_as_the_run(workspace: Path) -> None:
    run_id = recorded_run(workspace)
    result = gm("replay", run_id, "--recorded", "-q", cwd=workspace)
    assert result.returncode == 0, result.stderr
    assert "the loop makes the same decisions" in result.stdout


def test_recorded_replay_names_a_tool_call_the_loop_would_not_make(workspace: Path) -> None:
    recorded_run(workspace)
    seq = seq_of(workspace, "tool.called", 2)  # read_file a.txt; the record now says b.txt
    copy = tamper(
        workspace, "UPDATE events SET data = replace(data, 'a.txt', 'b.txt') WHERE seq = ?", seq
    )
    result = gm("replay", "last", "--recorded", "-q", cwd=copy)
    assert result.returncode == 1
    assert f"diverges at seq {seq}: the journal calls read_file" in result.stderr
    assert "the loop would call read_file({'path': 'a.txt'})" in result.stderr


async def test_recorded_replay_names_a_tool_the_current_loop_no_longer_has(
    workspace: Path,
) -> None:
    run_id = recorded_run(workspace)
    without_shell = ToolRegistry([t for t in builtin_tools().select(None) if t.name != "run_shell"])
    async with await Journal.open(workspace / ".gm" / "journal.db", read_only=True) as journal:
        report = await replay_recorded(journal, run_id, without_shell)
    problem = report.first_divergence
    assert problem is not None and problem.seq == seq_of(workspace, "tool.called", 1)
    assert "run_shell" in problem.message and "no longer has" in problem.message


def test_recorded_replay_checks_how_the_run_ended(workspace: Path) -> None:
    write_script(workspace / "moves.yaml", [{"text": "All done."}])
    task = write_task(workspace / "task.md", "Say it.", model="scripted:moves.yaml")
    assert gm("run", str(task), cwd=workspace).returncode == 0
    seq = seq_of(workspace, "run.finished")
    copy = tamper(
        workspace,
        "UPDATE events SET data = replace(data, 'All done.', 'Other.') WHERE seq = ?",
        seq,
    )
    result = gm("replay", "last", "--recorded", "-q", cwd=copy)
    assert result.returncode == 1
    assert f"diverges at seq {seq}: the run ended as succeeded; the loop would end" in result.stderr


def test_events_cut_off_the_end_are_found_and_never_loaded_from_a_checkpoint(
    workspace: Path,
) -> None:
    run_id = recorded_run(workspace)
    copy = workspace.parent / "cut"
    shutil.copytree(workspace, copy)
    with sqlite3.connect(copy / ".gm" / "journal.db") as conn:
        conn.execute("DROP TRIGGER events_no_delete")
        (last,) = conn.execute("SELECT max(seq) FROM events").fetchone()
        conn.execute("DELETE FROM events WHERE seq > ?", (last - 3,))
    result = gm("replay", "last", "-q", cwd=copy)
    assert result.returncode == 1
    assert f"diverges at seq {last - 2}:" in result.stderr
    assert "events missing from the end" in result.stderr
    status = gm("status", run_id, cwd=copy).stdout  # the exit checkpoint is past the end now
    assert "status   running" in status
