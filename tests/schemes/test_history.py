"""A scheme run's history: `gm replay --recorded` checks its steps' jobs against
its recorded scheme, and `gm fork` refuses it, saying what to do instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from gm_agent.events import JobIntent
from gm_agent.journal import Journal
from gm_agent.kernel import scheme_record_of
from gm_agent.kernel._scheme_replay import replay_scheme  # pyright: ignore[reportPrivateUsage]
from gm_agent.settings import load_settings
from tests.conftest import gm
from tests.helpers import ledger
from tests.schemes.helpers import scheme_run_id, write_scheme

pytestmark = pytest.mark.sandbox

STEPS = """\
- name: a
  shell: "echo a >> ledger; echo from-a"
- name: b
  depends_on: [a]
  shell: "echo b-saw-{{ steps.a.output | trim }} >> ledger"
- name: sub
  depends_on: [a]
  scheme: {name: inner, params: {word: "{{ steps.a.output | trim }}"}}
"""


def scheme_run(workspace: Path) -> str:
    """Run the scheme of STEPS (calling `inner`) to success; its run id."""
    write_scheme(
        workspace,
        "inner",
        '- name: x\n  shell: "echo inner-{{ params.word }} >> ledger"\n',
        "word: {type: string}\n",
    )
    write_scheme(workspace, "s", STEPS)
    ran = gm("scheme", "run", "s", cwd=workspace)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ledger(workspace) == ["a", "b-saw-from-a", "inner-from-a"]
    return scheme_run_id(workspace)


def test_replay_recorded_checks_a_scheme_runs_steps_and_finds_them_consistent(
    workspace: Path,
) -> None:
    run_id = scheme_run(workspace)

    replayed = gm("replay", "--recorded", run_id, cwd=workspace)

    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert f"replay of run {run_id} is consistent" in replayed.stdout


@pytest.mark.anyio
async def test_replay_recorded_names_a_step_whose_job_the_scheme_would_not_make(
    workspace: Path,
) -> None:
    run_id = scheme_run(workspace)
    async with await Journal.open(load_settings(workspace, {}).journal_path) as journal:
        record = await scheme_record_of(journal, run_id)
        history = await journal.read(run_id)
        assert record is not None
        assert (await replay_scheme(journal, record, history))[1] is None
        # As if a gm had rendered `b`'s template differently when it ran.
        (at,) = [
            i
            for i, e in enumerate(history)
            if isinstance(e.data, JobIntent) and e.data.args.get("step") == "b"
        ]
        intent = history[at].data
        assert isinstance(intent, JobIntent)
        changed = intent.model_copy(update={"args": {**intent.args, "command": "echo b"}})
        history[at] = history[at].model_copy(update={"data": changed})

        _, problem = await replay_scheme(journal, record, history)

    assert problem is not None
    assert problem[0] == history[at].seq
    assert problem[1] == (
        "step 'b''s command would now be 'echo b-saw-from-a >> ledger', not 'echo b'"
    )


def test_fork_of_a_scheme_run_is_refused_saying_what_to_do(workspace: Path) -> None:
    run_id = scheme_run(workspace)

    forked = gm("fork", run_id, "--at", "7", cwd=workspace)

    assert forked.returncode == 2
    assert f"run {run_id} is a run of the scheme 's'" in forked.stderr
    assert f"`gm undo {run_id}` and run the scheme again (`gm scheme run s ...`)" in forked.stderr
    assert len(gm("runs", "--json", cwd=workspace).stdout.splitlines()) == 1
