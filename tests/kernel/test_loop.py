"""The kernel loop, driven by scripted and function models: exact events, bytes on disk."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from gm_agent.clock import FakeClock
from gm_agent.errors import UserError
from gm_agent.events import (
    Event,
    ModelResponse,
    PatchApplied,
    RunStatusChanged,
    ToolCallData,
    ToolReturned,
    UserMessage,
)
from gm_agent.journal import Journal
from gm_agent.kernel import Kernel, RunOutcome, create_run, parse_task, replay_run, run_task
from gm_agent.kernel._decide import EMPTY_REPLY, MAX_MALFORMED_MOVES
from gm_agent.llm import Delta, FunctionModel, ModelRequest, Move, OnDelta
from gm_agent.llm.prices import Pricing
from gm_agent.settings import load_settings
from gm_agent.tools import builtin_tools
from tests.helpers import write_script, write_task

pytestmark = pytest.mark.anyio


async def run_script(
    workspace: Path,
    moves: list[dict[str, Any]],
    environ: dict[str, str] | None = None,
    **front: Any,
) -> tuple[RunOutcome, list[Event]]:
    script = write_script(workspace.parent / "moves.yaml", moves)
    task = write_task(
        workspace.parent / "task.md", "Do the task.", model=f"scripted:{script}", **front
    )
    outcome = await run_task(
        task,
        workspace=workspace,
        environ=environ or dict(os.environ),
        clock=FakeClock(),
        heartbeat=False,  # a fake clock's sleeps return at once: the heartbeat would spin
    )
    async with await Journal.open(workspace / ".gm" / "journal.db") as journal:
        replayed = await replay_run(journal, outcome.run_id)
        assert replayed.ok, replayed.problems  # every run folds again to its recorded hashes
        return outcome, await journal.read(outcome.run_id)


def kinds(events: list[Event]) -> list[str]:
    return [e.kind for e in events]


def returned(events: list[Event]) -> list[ToolReturned]:
    return [e.data for e in events if isinstance(e.data, ToolReturned)]


async def test_a_scripted_run_journals_exactly_this_sequence(workspace: Path) -> None:
    outcome, events = await run_script(
        workspace,
        [
            {
                "text": "Writing the file.",
                "tool_calls": [
                    {"name": "write_file", "args": {"path": "hello.txt", "content": "hello\n"}}
                ],
            },
            {"tool_calls": [{"name": "run_shell", "args": {"command": "echo done >> ledger.txt"}}]},
            {"finish": "wrote hello.txt and the ledger"},
        ],
    )
    assert (outcome.status, outcome.exit_code, outcome.summary) == (
        "succeeded",
        0,
        "wrote hello.txt and the ledger",
    )
    model_step = ["job.intent", "model.response", "job.result"]
    assert kinds(events) == [
        "run.created",
        "context.loaded",  # the skill catalogue (the built-in skills)
        "user.message",
        "run.status_changed",
        "sandbox.probed",  # how this process confines shell commands
        *model_step,
        "tool.called",
        "patch.intent",
        "patch.applied",
        "tool.returned",
        *model_step,
        "tool.called",
        "job.intent",
        "patch.applied",  # what the command changed: ledger.txt
        "job.result",
        "tool.returned",
        *model_step,
        "tool.called",
        "tool.returned",
        "run.status_changed",
        "run.finished",
        "checkpoint.saved",  # on exit: the final state, for replay, fork and compare
    ]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert (workspace / "hello.txt").read_bytes() == b"hello\n"
    assert (workspace / "ledger.txt").read_text() == "done\n"
    sources = {e.kind: e.source for e in events}
    assert sources["user.message"] == "user"
    assert sources["model.response"] == "model"
    assert sources["job.intent"] == "job"
    patch_sources = [e.source for e in events if e.kind == "patch.applied"]
    assert patch_sources == ["patch", "job"]  # write_file's, then the shell command's
    statuses = [(e.data.from_, e.data.to) for e in events if isinstance(e.data, RunStatusChanged)]
    assert statuses == [("created", "running"), ("running", "succeeded")]


async def test_a_file_write_is_a_patch_with_hashes_and_content_blobs(workspace: Path) -> None:
    (workspace / "notes.txt").write_bytes(b"old\n")
    (workspace / "notes.txt").chmod(0o640)
    _outcome, events = await run_script(
        workspace,
        [
            {
                "tool_calls": [
                    {"name": "edit_file", "args": {"path": "notes.txt", "old": "old", "new": "new"}}
                ]
            },
            {"finish": "edited"},
        ],
    )
    (patch,) = [e for e in events if isinstance(e.data, PatchApplied)]
    assert isinstance(patch.data, PatchApplied)
    (change,) = patch.data.files
    assert (change.path, change.op, change.mode) == ("notes.txt", "modify", 0o640)
    assert change.before_sha256 == hashlib.sha256(b"old\n").hexdigest()
    assert change.after_sha256 == hashlib.sha256(b"new\n").hexdigest()
    assert (workspace / "notes.txt").read_bytes() == b"new\n"
    assert (workspace / "notes.txt").stat().st_mode & 0o777 == 0o640  # the mode is kept
    async with await Journal.open(workspace / ".gm" / "journal.db") as journal:
        assert await journal.get_blob(change.before_sha256) == b"old\n"
        assert await journal.get_blob(change.after_sha256) == b"new\n"
    assert patch.causation_id is not None  # caused by its tool.called


async def test_the_shell_job_intent_is_committed_before_the_command_runs(workspace: Path) -> None:
    probe = (
        f"{sys.executable} -c \"import sqlite3; c = sqlite3.connect('.gm/journal.db'); "
        "print(c.execute(\\\"select count(*) from events where kind = 'job.intent' "
        "and json_extract(data, '$.kind') = 'shell'\\\").fetchone()[0])\""
    )
    _, events = await run_script(
        workspace,
        [{"tool_calls": [{"name": "run_shell", "args": {"command": probe}}]}, {"finish": "probed"}],
    )
    (shell,) = [r for r in returned(events) if r.name == "run_shell"]
    assert shell.output == "exit code 0\n1"


async def test_secrets_in_the_environment_never_reach_a_shell_command(workspace: Path) -> None:
    environ = {
        "PATH": os.environ["PATH"],
        "OPENAI_API_KEY": "sk-very-secret",
        "GITHUB_TOKEN": "ghp_secret",
        "HARMLESS": "visible",
    }
    _, events = await run_script(
        workspace,
        [{"tool_calls": [{"name": "run_shell", "args": {"command": "env"}}]}, {"finish": "ok"}],
        environ=environ,
    )
    (shell,) = [r for r in returned(events) if r.name == "run_shell"]
    assert "HARMLESS=visible" in shell.output
    everything = "\n".join(e.model_dump_json() for e in events)
    assert "sk-very-secret" not in everything and "ghp_secret" not in everything


async def test_a_failing_command_is_reported_to_the_model_and_the_run_goes_on(
    workspace: Path,
) -> None:
    outcome, events = await run_script(
        workspace,
        [
            {"tool_calls": [{"name": "run_shell", "args": {"command": "echo oops >&2; exit 3"}}]},
            {"finish": "noted"},
        ],
    )
    (shell,) = returned(events)[:1]
    assert (shell.ok, shell.output) == (False, "exit code 3\noops")
    assert outcome.status == "succeeded"


async def test_the_step_budget_stops_the_run_waiting_before_it_spends_more(
    workspace: Path,
) -> None:
    loop = {"tool_calls": [{"name": "list_dir", "args": {}}]}
    outcome, events = await run_script(workspace, [loop, loop, loop, loop], max_steps=2)
    assert (outcome.status, outcome.exit_code) == ("waiting", 3)
    assert outcome.needs is not None and outcome.needs.startswith("budget: max_steps=2 reached")
    assert kinds(events).count("model.response") == 2


async def test_a_script_that_runs_out_fails_the_run_clearly(workspace: Path) -> None:
    outcome, _ = await run_script(workspace, [{"tool_calls": [{"name": "list_dir", "args": {}}]}])
    assert outcome.status == "failed"
    assert (
        outcome.error is not None and "has 1 moves" in outcome.error and "finish" in outcome.error
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ({"name": "launch_rockets", "args": {}}, "unknown tool 'launch_rockets'"),
        (
            {"name": "read_file", "args": {"path": "x", "colour": 1}},
            "invalid arguments for read_file: colour",
        ),
        (
            {"name": "read_file", "args": {}},
            "invalid arguments for read_file: path: Field required",
        ),
        ({"name": "read_file", "args": {"path": "../outside"}}, "outside the workspace"),
        ({"name": "write_file", "args": {"path": ".gm/journal.db", "content": ""}}, "inside .gm/"),
        (
            {"name": "edit_file", "args": {"path": "missing.txt", "old": "a", "new": "b"}},
            "does not exist",
        ),
    ],
    ids=["unknown-tool", "extra-arg", "missing-arg", "escape", "protected", "missing-file"],
)
async def test_mistakes_the_model_makes_are_reported_to_it(
    workspace: Path, call: dict[str, Any], message: str
) -> None:
    outcome, events = await run_script(workspace, [{"tool_calls": [call]}, {"finish": "ok"}])
    first = returned(events)[0]
    assert not first.ok
    assert message in first.output
    assert outcome.status == "succeeded"


async def test_a_tool_outside_the_allow_list_is_refused(workspace: Path) -> None:
    _, events = await run_script(
        workspace,
        [
            {"tool_calls": [{"name": "run_shell", "args": {"command": "touch pwned"}}]},
            {"finish": "ok"},
        ],
        tools=["read_file"],
    )
    assert "unknown tool 'run_shell'" in returned(events)[0].output
    assert not (workspace / "pwned").exists()


async def test_a_reply_without_tool_calls_ends_the_run_with_its_text(workspace: Path) -> None:
    outcome, _ = await run_script(workspace, [{"text": "Nothing to do: the file already exists."}])
    assert (outcome.status, outcome.summary) == (
        "succeeded",
        "Nothing to do: the file already exists.",
    )


async def test_an_empty_reply_is_shown_to_the_model_which_can_correct_it(
    workspace: Path,
) -> None:
    outcome, events = await run_script(workspace, [{"text": ""}, {"finish": "done after all"}])
    assert (outcome.status, outcome.summary) == ("succeeded", "done after all")
    told = [e for e in events if isinstance(e.data, UserMessage) and e.source == "kernel"]
    assert [e.data.text for e in told] == [EMPTY_REPLY]  # type: ignore[union-attr]


async def test_malformed_moves_in_a_row_end_the_run_at_the_limit(workspace: Path) -> None:
    bad = [
        {"text": ""},
        {"tool_calls": [{"name": "launch_rockets", "args": {}}]},
        {"text": ""},
        {"finish": "never reached"},
    ]
    outcome, events = await run_script(workspace, bad)
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert f"{MAX_MALFORMED_MOVES} malformed replies in a row" in outcome.error
    assert sum(isinstance(e.data, ModelResponse) for e in events) == MAX_MALFORMED_MOVES
    assert [r.malformed for r in returned(events)] == [True]


async def test_a_good_move_resets_the_malformed_count(workspace: Path) -> None:
    moves = [
        {"text": ""},
        {"tool_calls": [{"name": "launch_rockets", "args": {}}]},
        {"tool_calls": [{"name": "list_dir", "args": {"path": "."}}]},
        {"text": ""},
        {"tool_calls": [{"name": "launch_rockets", "args": {}}]},
        {"finish": "made it"},
    ]
    outcome, _ = await run_script(workspace, moves)
    assert (outcome.status, outcome.summary) == ("succeeded", "made it")


async def make_kernel(
    workspace: Path, model: FunctionModel, clock: FakeClock
) -> tuple[Journal, Kernel, str]:
    settings = load_settings(workspace, {})
    journal = await Journal.open(settings.journal_path, clock=clock)
    run_id = await create_run(
        journal, clock, parse_task("Task."), model=model.name, max_steps=5, workspace=workspace
    )
    kernel = Kernel(
        journal, model, builtin_tools(), settings, clock=clock, environ={}, heartbeat=False
    )
    return journal, kernel, run_id


async def test_arguments_that_are_not_json_are_reported_and_the_model_sees_every_result(
    workspace: Path, clock: FakeClock
) -> None:
    requests: list[ModelRequest] = []

    async def model(request: ModelRequest) -> Move:
        requests.append(request)
        if len(requests) == 1:
            return Move(
                tool_calls=(
                    ToolCallData(call_id="c1", name="write_file", args_error="not JSON: '{pa'"),
                )
            )
        return Move(text="giving up")

    journal, kernel, run_id = await make_kernel(workspace, FunctionModel(model), clock)
    async with journal:
        outcome = await kernel.execute(run_id)
    assert outcome.status == "succeeded"
    last = requests[-1].messages
    assert [m.role for m in last] == ["system", "user", "assistant", "tool"]
    assert last[-1].call_id == "c1" and "not JSON" in last[-1].text


async def test_interrupting_a_run_pauses_it_and_keeps_what_was_journaled(
    workspace: Path, clock: FakeClock
) -> None:
    started = anyio.Event()

    async def slow_model(request: ModelRequest) -> Move:
        started.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    journal, kernel, run_id = await make_kernel(workspace, FunctionModel(slow_model), clock)
    async with journal:
        async with anyio.create_task_group() as tg:
            tg.start_soon(kernel.execute, run_id)
            await started.wait()
            tg.cancel_scope.cancel()
        events = await journal.read(run_id)
    assert kinds(events)[-4:] == [
        "job.intent",
        "job.cancelled",
        "run.status_changed",
        "checkpoint.saved",
    ]
    last = events[-2].data
    assert isinstance(last, RunStatusChanged)
    assert (last.from_, last.to, last.reason) == ("running", "paused", "interrupted by the user")
    assert (await journal_status(workspace, run_id)) == "paused"


async def journal_status(workspace: Path, run_id: str) -> str:
    async with await Journal.open(workspace / ".gm" / "journal.db") as journal:
        return (await journal.get_run(run_id)).status


async def test_the_kernels_state_is_exactly_the_fold_of_what_it_journaled(
    workspace: Path, clock: FakeClock
) -> None:
    async def model(request: ModelRequest) -> Move:
        turn = sum(1 for m in request.messages if m.role == "assistant")
        calls = {
            0: ToolCallData(
                call_id="c0", name="write_file", args={"path": "a.txt", "content": "a"}
            ),
            1: ToolCallData(call_id="c1", name="run_shell", args={"command": "cat a.txt"}),
        }
        if turn in calls:
            return Move(tool_calls=(calls[turn],))
        return Move(text="done")

    journal, kernel, run_id = await make_kernel(workspace, FunctionModel(model), clock)
    async with journal:
        await kernel.execute(run_id)
        from gm_agent.kernel import fold

        assert kernel.state == fold(await journal.read(run_id))


async def test_an_illegal_transition_never_reaches_the_journal(
    workspace: Path, clock: FakeClock
) -> None:
    async def model(request: ModelRequest) -> Move:
        return Move(text="done")

    journal, kernel, run_id = await make_kernel(workspace, FunctionModel(model), clock)
    async with journal:
        assert (await kernel.execute(run_id)).status == "succeeded"
        before = await journal.read(run_id)
        with pytest.raises(UserError, match="already succeeded"):
            await kernel.execute(run_id)
        assert await journal.read(run_id) == before


async def test_a_failing_observer_never_stops_the_run(workspace: Path) -> None:
    script = write_script(workspace.parent / "moves.yaml", [{"finish": "ok"}])
    task = write_task(workspace.parent / "task.md", "Do it.", model=f"scripted:{script}")
    seen: list[str] = []

    def observer(event: Event) -> None:
        seen.append(event.kind)
        raise BrokenPipeError("stdout closed")

    outcome = await run_task(
        task, workspace=workspace, environ={}, clock=FakeClock(), observer=observer, heartbeat=False
    )
    assert outcome.status == "succeeded"
    assert seen == ["run.created"]  # the observer failed once and was dropped; the run went on


class _Streaming:
    """A model that streams its answer in three pieces."""

    name = "stream:test"
    pricing: Pricing = "free"
    context_window: int | None = None

    async def request(self, request: ModelRequest, on_delta: OnDelta | None = None) -> Move:
        for piece in ("All ", "done ", "here."):
            if on_delta is not None:
                on_delta(Delta(text=piece))
        return Move(text="All done here.")

    async def aclose(self) -> None:
        pass


async def test_streamed_pieces_reach_the_watcher_and_only_the_whole_reply_is_journaled(
    workspace: Path, clock: FakeClock
) -> None:
    settings = load_settings(workspace, {})
    seen: list[Event | Delta] = []
    async with await Journal.open(settings.journal_path, clock=clock) as journal:
        model = _Streaming()
        run_id = await create_run(
            journal, clock, parse_task("Task."), model=model.name, max_steps=5, workspace=workspace
        )
        kernel = Kernel(
            journal, model, builtin_tools(), settings, clock=clock, environ={},
            heartbeat=False, observer=seen.append,
        )  # fmt: skip
        outcome = await kernel.execute(run_id)
        journaled = await journal.read(run_id)
    assert outcome.status == "succeeded" and outcome.summary == "All done here."
    assert [d.text for d in seen if isinstance(d, Delta)] == ["All ", "done ", "here."]
    assert [e.id for e in seen if isinstance(e, Event)] == [e.id for e in journaled][2:]
    (response,) = [e.data for e in journaled if e.kind == "model.response"]
    assert isinstance(response, ModelResponse) and response.text == "All done here."


async def test_a_streaming_reply_is_shown_to_other_processes_until_it_is_journaled(
    workspace: Path, clock: FakeClock
) -> None:
    from gm_agent.kernel._live import live_path

    shown: list[str] = []

    class Streams:
        name = "stream:live"
        pricing: Pricing = "free"
        context_window: int | None = None

        async def request(self, request: ModelRequest, on_delta: OnDelta | None = None) -> Move:
            assert on_delta is not None  # streamed even with no observer: the TUI may watch
            for piece in ("Looking ", "closer."):
                on_delta(Delta(text=piece))
                shown.append(live_path(workspace, run_id).read_text())
            return Move(text="Looking closer.")

        async def aclose(self) -> None:
            """Nothing to release."""

    settings = load_settings(workspace, {})
    async with await Journal.open(settings.journal_path, clock=clock) as journal:
        run_id = await create_run(
            journal,
            clock,
            parse_task("Task."),
            model="stream:live",
            max_steps=3,
            workspace=workspace,
        )
        kernel = Kernel(
            journal, Streams(), builtin_tools(), settings, clock=clock, environ={}, heartbeat=False
        )
        outcome = await kernel.execute(run_id)
    assert outcome.status == "succeeded"
    assert shown == ["Looking ", "Looking closer."]
    assert not live_path(workspace, run_id).exists()  # gone once the reply was journaled
