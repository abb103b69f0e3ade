"""Steering a live run from outside: messages, preempting messages, interrupts, cancels.

The kernel runs in this process on the real clock with its background watch on;
the test plays the other terminal by appending control events through a second
connection to the journal, as `gm send`, `gm interrupt` and `gm cancel` do.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from gm_agent.clock import SystemClock
from gm_agent.errors import UserError
from gm_agent.events import (
    AnyEventData,
    Event,
    JobCancelled,
    RunCancel,
    RunInterrupt,
    ToolCallData,
    ToolReturned,
    UserMessage,
    new_event,
)
from gm_agent.journal import Journal
from gm_agent.kernel import (
    Kernel,
    RunOutcome,
    cancel_run,
    create_run,
    interrupt_run,
    parse_task,
    replay_run,
)
from gm_agent.kernel._decide import SKIPPED
from gm_agent.kernel.loop import UNREAD_MESSAGE
from gm_agent.llm import FunctionModel, ModelRequest, Move
from gm_agent.settings import load_settings
from gm_agent.tools import builtin_tools

pytestmark = [pytest.mark.anyio, pytest.mark.sandbox]

ModelFunction = Callable[[ModelRequest], Awaitable[Move]]


def call(name: str, n: int, **args: object) -> ToolCallData:
    return ToolCallData(call_id=f"c{n}", name=name, args=args)  # type: ignore[arg-type]


def finish(summary: str = "done") -> Move:
    return Move(tool_calls=(call("finish", 99, summary=summary),))


def said(request: ModelRequest) -> list[str]:
    """The user messages of a request after the task, in order."""
    return [m.text for m in request.messages if m.role == "user"][1:]


class Run:
    """A live run driven in the background, and a second journal connection to steer it."""

    def __init__(self, journal: Journal, run_id: str) -> None:
        self.journal = journal
        self.run_id = run_id
        self.outcome: RunOutcome | None = None
        self.clock = SystemClock()
        self.recorded: list[Event] | None = None  # the whole run, once it stopped

    async def append(self, data: AnyEventData) -> None:
        await self.journal.append([new_event(self.clock, self.run_id, "user", data)])

    async def events(self) -> list[Event]:
        if self.recorded is not None:
            return self.recorded
        return await self.journal.read(self.run_id)

    async def wait_for(self, kind: str, count: int = 1) -> None:
        with anyio.fail_after(20):
            while True:  # polling the journal is the point: it is how other processes see it
                if sum(e.kind == kind for e in await self.events()) >= count:
                    return
                await anyio.sleep(0.02)


@asynccontextmanager
async def live_run(
    workspace: Path, function: ModelFunction, kernel_type: type[Kernel] = Kernel
) -> AsyncIterator[Run]:
    """Start a run of ``function``'s moves; the block steers it; leaving it waits
    for the run to stop."""
    settings = load_settings(workspace, {})
    clock = SystemClock()
    async with (
        await Journal.open(settings.journal_path, clock=clock) as kernel_side,
        await Journal.open(settings.journal_path, clock=clock) as user_side,
    ):
        run_id = await create_run(
            kernel_side, clock, parse_task("Task."), model="function:test", max_steps=9,
            workspace=workspace,
        )  # fmt: skip
        kernel = kernel_type(
            kernel_side,
            FunctionModel(function),
            builtin_tools(),
            settings,
            clock=clock,
            environ=dict(os.environ),
        )
        run = Run(user_side, run_id)
        async with anyio.create_task_group() as tg:

            async def drive() -> None:
                run.outcome = await kernel.execute(run_id)

            tg.start_soon(drive)
            yield run
        assert (await replay_run(user_side, run_id)).ok  # the journal folds as it was lived
        run.recorded = await user_side.read(run_id)


async def test_messages_sent_while_the_model_thinks_arrive_after_its_step_in_order(
    workspace: Path,
) -> None:
    requests: list[ModelRequest] = []
    sent = anyio.Event()

    async def model(request: ModelRequest) -> Move:
        requests.append(request)
        if len(requests) == 1:
            await sent.wait()
            return Move(tool_calls=(call("list_dir", 1, path="."),))
        return finish()

    async with live_run(workspace, model) as run:
        await run.wait_for("job.intent")
        await run.append(UserMessage(text="first"))
        await run.append(UserMessage(text="second"))
        sent.set()
    assert run.outcome is not None and run.outcome.status == "succeeded"
    last = requests[-1]
    assert said(last) == ["first", "second"]
    roles = [m.role for m in last.messages]
    assert roles[-4:] == ["assistant", "tool", "user", "user"]  # after the step's result


async def test_a_preempting_message_stops_the_model_and_is_answered_first(
    workspace: Path,
) -> None:
    requests: list[ModelRequest] = []

    async def model(request: ModelRequest) -> Move:
        requests.append(request)
        if len(requests) == 1:
            await anyio.sleep(60)  # thinking, until the message cuts in
        return finish("answered the message")

    async with live_run(workspace, model) as run:
        await run.wait_for("job.intent")
        await run.append(UserMessage(text="stop, do this instead", preempt=True))
    assert run.outcome is not None and run.outcome.summary == "answered the message"
    assert said(requests[-1]) == ["stop, do this instead"]
    assert any(isinstance(e.data, JobCancelled) for e in await run.events())


async def test_a_preempting_message_skips_the_rest_of_the_step(workspace: Path) -> None:
    requests: list[ModelRequest] = []

    async def model(request: ModelRequest) -> Move:
        requests.append(request)
        if len(requests) == 1:
            return Move(
                tool_calls=(
                    call("run_shell", 1, command="sleep 1"),
                    call("list_dir", 2, path="."),
                    call("list_dir", 3, path="."),
                )
            )
        return finish()

    async with live_run(workspace, model) as run:
        await run.wait_for("job.intent", 2)  # the model request, then the command
        await run.append(UserMessage(text="wait!", preempt=True))
    returned = [e.data for e in await run.events() if isinstance(e.data, ToolReturned)]
    assert [(r.call_id, r.ok) for r in returned][:3] == [("c1", True), ("c2", False), ("c3", False)]
    assert returned[1].output == returned[2].output == SKIPPED
    assert said(requests[-1]) == ["wait!"]


async def test_an_interrupt_stops_the_model_request_and_pauses_the_run(workspace: Path) -> None:
    async def model(request: ModelRequest) -> Move:
        await anyio.sleep(60)
        return finish()

    async with live_run(workspace, model) as run:
        await run.wait_for("job.intent")
        await run.append(RunInterrupt(reason="lunch"))
    assert run.outcome is not None and run.outcome.status == "paused"
    kinds = [e.kind for e in await run.events()]
    assert kinds[-4:] == [
        "run.interrupt",
        "job.cancelled",
        "run.status_changed",
        "checkpoint.saved",
    ]


async def test_a_cancel_kills_the_running_command_and_ends_the_run(workspace: Path) -> None:
    async def model(request: ModelRequest) -> Move:
        return Move(tool_calls=(call("run_shell", 1, command="sleep 60 && touch late"),))

    async with live_run(workspace, model) as run:
        await run.wait_for("job.intent", 2)
        await anyio.sleep(0.2)  # the command is running
        await run.append(RunCancel(reason="wrong task"))
    assert run.outcome is not None
    assert (run.outcome.status, run.outcome.error) == (
        "cancelled",
        "cancelled by the user: wrong task",
    )
    events = await run.events()
    assert [e.data.job_kind for e in events if isinstance(e.data, JobCancelled)] == ["shell"]
    assert not (workspace / "late").exists()


async def test_finishing_with_an_unread_message_is_refused_once(workspace: Path) -> None:
    requests: list[ModelRequest] = []
    sent = anyio.Event()

    async def model(request: ModelRequest) -> Move:
        requests.append(request)
        if len(requests) == 1:
            await sent.wait()
        return finish(f"finished at request {len(requests)}")

    async with live_run(workspace, model) as run:
        await run.wait_for("job.intent")
        await run.append(UserMessage(text="one more thing"))
        sent.set()
    assert run.outcome is not None and run.outcome.summary == "finished at request 2"
    first_reply = next(e.data for e in await run.events() if isinstance(e.data, ToolReturned))
    assert (first_reply.ok, first_reply.output) == (False, UNREAD_MESSAGE)
    assert said(requests[-1]) == ["one more thing"]


async def test_a_stopped_run_is_cancelled_in_place_and_cannot_be_interrupted(
    workspace: Path,
) -> None:
    async def model(request: ModelRequest) -> Move:
        await anyio.sleep(60)
        return finish()

    async with live_run(workspace, model) as run:
        await run.wait_for("job.intent")
        await run.append(RunInterrupt())
    with pytest.raises(UserError, match="nothing to interrupt"):
        await interrupt_run(workspace, run.run_id, {})
    cancelled = await cancel_run(workspace, run.run_id, {}, reason="not needed")
    assert (cancelled.live, cancelled.status) == (False, "cancelled")
    async with await Journal.open(workspace / ".gm" / "journal.db") as journal:
        assert (await replay_run(journal, run.run_id)).ok
        assert (await journal.get_run(run.run_id)).status == "cancelled"
    with pytest.raises(UserError, match="already cancelled"):
        await cancel_run(workspace, run.run_id, {})


async def test_a_run_queues_for_the_writer_lock_with_a_clear_status(workspace: Path) -> None:
    from gm_agent.patches import WriterLock

    calls = 0

    async def model(request: ModelRequest) -> Move:
        nonlocal calls
        calls += 1
        if calls == 1:
            return Move(tool_calls=(call("write_file", 1, path="a.txt", content="a\n"),))
        return finish()

    holder = WriterLock(
        workspace / ".gm" / "writer.lock", "gm undo (another terminal)", SystemClock()
    )
    await holder.__aenter__()  # another process is changing files
    async with live_run(workspace, model) as run:
        await run.wait_for("run.status_changed", 2)  # created -> running -> waiting
        changes = [e.data for e in await run.events() if e.kind == "run.status_changed"]
        assert changes[-1].reason == "writer lock: queued behind gm undo (another terminal)"  # type: ignore[union-attr]
        assert not (workspace / "a.txt").exists()
        await holder.__aexit__(None, None, None)  # the other writer is done
    assert run.outcome is not None and run.outcome.status == "succeeded"
    assert (workspace / "a.txt").read_text() == "a\n"
    reasons = [e.data.reason for e in await run.events() if e.kind == "run.status_changed"]  # type: ignore[union-attr]
    assert reasons[1:3] == [
        "writer lock: queued behind gm undo (another terminal)",
        "writer lock free",
    ]


async def test_a_message_landing_just_before_the_model_is_asked_is_in_the_request(
    workspace: Path,
) -> None:
    """The kernel decides on what it last read; a message that lands after that
    read but before the request is journaled must not be skipped over."""
    requests: list[ModelRequest] = []

    async def model(request: ModelRequest) -> Move:
        requests.append(request)
        return finish()

    class SteeredJustBefore(Kernel):
        landed = False

        async def _compact(self) -> None:  # the last moment before the request's intent
            if not self.landed:
                self.landed = True
                async with await Journal.open(workspace / ".gm" / "journal.db") as other:
                    message = UserMessage(text="late word")
                    await other.append(
                        [new_event(SystemClock(), self.state.run_id, "user", message)]
                    )
            await super()._compact()

    async with live_run(workspace, model, SteeredJustBefore) as run:
        pass
    assert run.outcome is not None and run.outcome.status == "succeeded"
    assert said(requests[0]) == ["late word"]


async def test_an_interrupted_approval_is_asked_once_and_answered_after_resume(
    workspace: Path,
) -> None:
    from gm_agent.events import ApprovalGranted

    calls = 0

    async def model(request: ModelRequest) -> Move:
        nonlocal calls
        calls += 1
        if calls == 1:
            return Move(tool_calls=(call("run_shell", 1, command="echo ok"),))
        return finish()

    settings = load_settings(workspace, {})
    clock = SystemClock()
    task = parse_task("---\npolicy: {rules: [{tool: run_shell, action: ask}]}\n---\nTask.")
    async with (
        await Journal.open(settings.journal_path, clock=clock) as journal,
        await Journal.open(settings.journal_path, clock=clock) as user_side,
    ):
        run_id = await create_run(
            journal, clock, task, model="function:test", max_steps=5, workspace=workspace
        )
        run = Run(user_side, run_id)

        def kernel() -> Kernel:
            return Kernel(
                journal, FunctionModel(model), builtin_tools(), settings, clock=clock,
                environ=dict(os.environ), approvals="wait",
            )  # fmt: skip

        async with anyio.create_task_group() as tg:

            async def interrupt_when_asked() -> None:
                await run.wait_for("approval.requested")
                await run.append(RunInterrupt())

            tg.start_soon(interrupt_when_asked)
            paused = await kernel().execute(run_id)
        assert paused.status == "paused"
        async with anyio.create_task_group() as tg:

            async def approve_when_asked_again() -> None:
                await run.wait_for(
                    "run.status_changed", 5
                )  # running, waiting, paused, running, waiting
                await run.append(ApprovalGranted(call_id="c1"))

            tg.start_soon(approve_when_asked_again)
            with anyio.fail_after(30):  # asked twice, it would wait on the first forever
                resumed = await kernel().execute(run_id)
        assert resumed.status == "succeeded"
        kinds = [e.kind for e in await user_side.read(run_id)]
        assert kinds.count("approval.requested") == 1
        assert (await replay_run(user_side, run_id)).ok
