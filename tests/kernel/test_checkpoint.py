"""Checkpoints: when they are saved, that they load to exactly the fold, and that
their storage grows with the run, not with its square."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gm_agent.clock import FakeClock
from gm_agent.events import (
    AnyEventData,
    CheckpointSaved,
    JobIntent,
    JobResult,
    ModelResponse,
    PatchApplied,
    RunCreated,
    RunStatusChanged,
    ToolCallData,
    ToolCalled,
    ToolReturned,
    UserMessage,
)
from gm_agent.journal import Journal
from gm_agent.kernel import RunState, fold, history, load_state
from gm_agent.kernel._checkpoint import ItemCodes, encode_state
from tests.conftest import gm
from tests.helpers import events_of, write_script, write_task

pytestmark = pytest.mark.anyio

WRITE = {"tool_calls": [{"name": "write_file", "args": {"path": "a.txt", "content": "{n}\n"}}]}


def moves(steps: int) -> list[dict[str, Any]]:
    writes = [
        {"tool_calls": [{"name": "write_file", "args": {"path": f"f{n}.txt", "content": f"{n}\n"}}]}
        for n in range(steps)
    ]
    return [*writes, {"finish": "done"}]


def run_with_checkpoints(workspace: Path, steps: int, every_steps: int) -> None:
    (workspace / "gm.toml").write_text(f"[checkpoint]\nevery_steps = {every_steps}\n")
    write_script(workspace.parent / "moves.yaml", moves(steps))
    task = write_task(workspace.parent / "task.md", "Write.", model="scripted:moves.yaml")
    result = gm("run", str(task), cwd=workspace)
    assert result.returncode == 0, result.stderr


async def test_checkpoints_are_saved_every_n_steps_at_safe_points_and_on_exit(
    workspace: Path,
) -> None:
    run_with_checkpoints(workspace, steps=5, every_steps=2)
    async with await Journal.open(workspace / ".gm" / "journal.db") as journal:
        events = await journal.read()
        saved = [e.data for e in events if isinstance(e.data, CheckpointSaved)]
        # Before the model requests of steps 3 and 5 (2 steps each), and after the end.
        assert [s.steps for s in saved] == [2, 4, 6]
        assert events[-1].kind == "checkpoint.saved"
        for checkpoint in saved:
            before = [e for e in events if (e.seq or 0) <= checkpoint.upto_seq]
            assert fold(before).state_hash() == checkpoint.state_hash
            state = fold(before)
            assert not state.open_calls and not state.open_jobs()  # a safe point
        rows = await journal.checkpoint_hashes(events[0].run_id)
        assert rows == {s.upto_seq: s.state_hash for s in saved}


async def test_loading_from_a_checkpoint_gives_exactly_the_fold_of_every_event(
    workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_with_checkpoints(workspace, steps=5, every_steps=2)
    async with await Journal.open(workspace / ".gm" / "journal.db") as journal:
        run_id = (await journal.list_runs())[0].run_id
        events = await history(journal, run_id)
        for event in events:  # at every seq, from whichever checkpoint is newest there
            with caplog.at_level(logging.WARNING):
                state, _ = await load_state(journal, run_id, event.seq)
            expected = fold(e for e in events if (e.seq or 0) <= (event.seq or 0))
            assert state.canonical_json() == expected.canonical_json()
    assert "not used" not in caplog.text


async def test_a_checkpoint_that_does_not_match_its_hash_is_skipped_not_trusted(
    workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_with_checkpoints(workspace, steps=3, every_steps=1)
    path = workspace / ".gm" / "journal.db"
    with sqlite3.connect(path) as conn:  # a damaged checkpoint: its hash no longer matches
        conn.execute("UPDATE checkpoints SET state_hash = 'bad'")
    async with await Journal.open(path) as journal:
        run_id = (await journal.list_runs())[0].run_id
        with caplog.at_level(logging.WARNING):
            state, _ = await load_state(journal, run_id)
        assert state.canonical_json() == fold(await journal.read(run_id)).canonical_json()
    assert "not used (its state does not match its hash)" in caplog.text


def _step_events(clock: FakeClock, n: int, payload: str) -> list[AnyEventData]:
    call = ToolCallData(call_id=f"c{n}", name="write_file", args={"path": f"f{n}.txt"})
    return [
        JobIntent(job_id=f"m{n}", key=f"k{n}", job_kind="model", args_digest="d", idempotent=True),
        ModelResponse(job_id=f"m{n}", model="m", tool_calls=(call,)),
        JobResult(job_id=f"m{n}", key=f"k{n}", job_kind="model", ok=True),
        ToolCalled(call_id=f"c{n}", name="write_file", args={"path": f"f{n}.txt"}),
        PatchApplied(patch_id=f"p{n}", call_id=f"c{n}", files=()),
        ToolReturned(call_id=f"c{n}", name="write_file", ok=True, output=payload),
    ]


def _running(clock: FakeClock) -> tuple[RunState, int]:
    """A run just started: its state and its last seq."""
    datas: list[AnyEventData] = [
        RunCreated(task="t", model="m", max_steps=10_000, workspace="/w"),
        UserMessage(text="go"),
        RunStatusChanged.between("created", "running"),
    ]
    return fold(events_of(clock, "RUN", *datas)), len(datas)


@pytest.mark.parametrize("change_bytes", [1024, 10 * 1024])
def test_the_bytes_a_checkpoint_adds_do_not_grow_with_the_run(change_bytes: int) -> None:
    clock = FakeClock()
    state, seq = _running(clock)
    stored: set[str] = set()
    added: list[int] = []
    for step in range(1, 601):
        step_datas = _step_events(clock, step, f"{step:06d}" * (change_bytes // 6))
        state = fold(events_of(clock, "RUN", *step_datas, first_seq=seq + 1), state)
        seq += len(step_datas)
        if step % 10 == 0:  # a checkpoint every 10 steps, each adding 10 steps of change
            encoded = encode_state(state, stored)
            stored.update(encoded.nodes)
            added.append(len(encoded.text) + sum(len(n) for n in encoded.nodes.values()))
    state_bytes = len(state.canonical_json())
    early, late = max(added[1:6]), max(added[-5:])
    # What 10 steps changed, plus a few KiB of tree nodes: the same late as early,
    assert late <= early * 1.25, added
    # and far below the whole state, which a copying checkpointer would store each time.
    assert late * 20 < state_bytes


def test_encoding_with_the_run_s_item_codes_is_byte_for_byte_the_same() -> None:
    """The kernel encodes each turn, job and patch once; its checkpoints must be
    the ones encoding the whole state each time gives (same text, hash, nodes)."""
    from gm_agent.events import FileChange, JobAmbiguous, PatchReverted

    clock = FakeClock()
    state, seq = _running(clock)
    codes, stored_with, stored_without = ItemCodes(), set[str](), set[str]()
    for step in range(1, 150):
        step_datas = _step_events(clock, step, "ü" * (step * 37 % 5000))
        if step % 7 == 0:  # change earlier items too: a job settled, a patch reverted
            change = FileChange(path=f"f{step}", op="create", before_sha256=None, after_sha256="a")
            step_datas += [
                JobIntent(
                    job_id=f"s{step}", key="k", job_kind="shell", args_digest="d", idempotent=False
                ),
                JobAmbiguous(job_id=f"s{step}", key="k", job_kind="shell", message="?"),
                PatchApplied(patch_id=f"q{step}", call_id=None, files=(change,)),
                PatchReverted(patch_id=f"p{step - 3}", undo_id="u", files=()),
            ]
        state = fold(events_of(clock, "RUN", *step_datas, first_seq=seq + 1), state)
        seq += len(step_datas)
        if step % 5 == 0:
            with_codes = encode_state(state, stored_with, codes)
            without = encode_state(state, frozenset(stored_without))
            assert with_codes == without
            assert with_codes.state_hash == state.state_hash()
            stored_with.update(with_codes.nodes)
            stored_without.update(without.nodes)
