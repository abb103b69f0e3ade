"""The kernel loop: drive one run from its journal until it ends.

::

    state = fold(journal events of the run)
    loop:
        check the step budget
        move = model request (a job: its response is journaled)
        for each tool call: tool.called -> reply, patch or job -> tool.returned
    until the model finishes, the budget stops it, or the user interrupts

Everything the loop does is an event; the loop's own state is only ever the
fold of what it committed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import assert_never

import anyio
import anyio.to_thread

from gm_agent.clock import Clock
from gm_agent.errors import PatchError, ToolError
from gm_agent.events import (
    AnyEventData,
    Event,
    EventSource,
    FileChange,
    ModelResponse,
    PatchApplied,
    RunCreated,
    RunFinished,
    RunStatus,
    RunStatusChanged,
    TerminalStatus,
    ToolCallData,
    ToolCalled,
    ToolReturned,
    UserMessage,
    new_event,
)
from gm_agent.jobs import (
    JobOutcome,
    JobSpec,
    args_digest,
    idempotency_key,
    run_job,
    run_shell,
    scrub_env,
)
from gm_agent.journal import Journal
from gm_agent.kernel.context import build_request
from gm_agent.kernel.state import RunState, evolve, fold
from gm_agent.kernel.task import TaskSpec
from gm_agent.llm import Model, Move
from gm_agent.patches import PlannedChange, apply_changes, plan_write
from gm_agent.settings import Settings
from gm_agent.tools import FileWrite, Finish, Reply, ShellCommand, Tool, ToolContext, ToolRegistry

__all__ = ["EXIT_CODES", "Kernel", "RunOutcome", "create_run"]

EXIT_CODES: dict[RunStatus, int] = {
    "succeeded": 0,
    "failed": 1,
    "cancelled": 1,
    "waiting": 3,
    "paused": 130,
    "running": 1,
    "created": 1,
}
"""``gm run`` exit code for the status a run stopped in (ARCHITECTURE.md, "Process model")."""

EventObserver = Callable[[Event], None]
"""Called with each event right after it is committed (for live output)."""

_SOURCES: dict[str, EventSource] = {
    "user.message": "user",
    "model.response": "model",
    "job.intent": "job",
    "job.result": "job",
    "patch.applied": "patch",
}


@dataclass(frozen=True)
class RunOutcome:
    """How a run stopped: its id, status, and summary or error."""

    run_id: str
    status: RunStatus
    summary: str | None
    error: str | None

    @property
    def exit_code(self) -> int:
        """The process exit code for this outcome; see :data:`EXIT_CODES`."""
        return EXIT_CODES[self.status]


async def create_run(
    journal: Journal, clock: Clock, task: TaskSpec, *, model: str, max_steps: int, workspace: Path
) -> str:
    """Record a new run of ``task`` (``run.created`` and the task as ``user.message``).

    Returns:
        The new run's id (a ULID).
    """
    run_id = clock.new_id()
    created = RunCreated(
        task=task.text,
        task_path=str(task.path) if task.path else None,
        model=model,
        max_steps=max_steps,
        tools=task.tools,
        instructions=task.instructions,
        workspace=str(workspace),
    )
    await journal.append(
        [
            new_event(clock, run_id, "kernel", created),
            new_event(clock, run_id, "user", UserMessage(text=task.text)),
        ]
    )
    return run_id


class Kernel:
    """Executes runs: the only code that appends a run's events while it runs.

    Args:
        journal: the workspace's journal.
        model: the model the run talks to.
        registry: the tools that exist; a run's allow-list selects from them.
        settings: workspace settings (tool limits, workspace root).
        clock: time and ids.
        environ: the environment tools inherit, before secrets are removed.
        observer: called with every event as it is committed.
    """

    def __init__(
        self,
        journal: Journal,
        model: Model,
        registry: ToolRegistry,
        settings: Settings,
        *,
        clock: Clock,
        environ: Mapping[str, str],
        observer: EventObserver | None = None,
    ) -> None:
        self._journal = journal
        self._model = model
        self._registry = registry
        self._settings = settings
        self._clock = clock
        self._environ = environ
        self._observer = observer
        self._state = RunState()
        self._tools: dict[str, Tool] = {}

    @property
    def state(self) -> RunState:
        """The current fold of the run's committed events."""
        return self._state

    async def execute(self, run_id: str) -> RunOutcome:
        """Drive run ``run_id`` until it succeeds, fails, or is interrupted.

        On cancellation (Ctrl-C) the run is recorded as ``paused`` before the
        cancellation propagates. Errors in gm_agent itself propagate; errors the
        model causes are reported to it and the run goes on.
        """
        self._state = fold(await self._journal.read(run_id))
        self._tools = {t.name: t for t in self._registry.select(self._state.tools)}
        await self._set_status("running")
        try:
            while self._state.status == "running":
                await self._step()
        except BaseException:
            with anyio.CancelScope(shield=True):
                if self._state.status == "running":
                    await self._set_status("paused", "interrupted by the user")
            raise
        return RunOutcome(run_id, self._state.status, self._state.summary, self._state.error)

    # -- events ------------------------------------------------------------

    async def _emit(
        self, datas: Sequence[AnyEventData], cause: str | None = None, blobs: Iterable[bytes] = ()
    ) -> list[Event]:
        events = [
            new_event(self._clock, self._state.run_id, _SOURCES.get(d.kind, "kernel"), d, cause)
            for d in datas
        ]
        committed = await self._journal.append(events, blobs)
        for event in committed:
            self._state = evolve(self._state, event)
            if self._observer is not None:
                self._observer(event)
        return committed

    async def _set_status(self, to: RunStatus, reason: str | None = None) -> None:
        await self._emit([RunStatusChanged.between(self._state.status, to, reason)])

    async def _finish(
        self, status: TerminalStatus, *, summary: str | None = None, error: str | None = None
    ) -> None:
        await self._emit(
            [
                RunStatusChanged.between(self._state.status, status),
                RunFinished(status=status, summary=summary, error=error),
            ]
        )

    # -- one step ----------------------------------------------------------

    async def _step(self) -> None:
        state = self._state
        if state.step >= state.max_steps:
            await self._finish(
                "failed",
                error=f"the run reached max_steps={state.max_steps} without finishing; "
                "raise it with --max-steps or `max_steps:` in the task",
            )
            return
        response = await self._request_move()
        if response is None:
            return
        move = response.data
        assert isinstance(move, ModelResponse)
        if not move.tool_calls:
            if move.text.strip():
                await self._finish("succeeded", summary=move.text.strip())
            else:
                await self._finish(
                    "failed", error="the model returned an empty reply (no text, no tool call)"
                )
            return
        for index, call in enumerate(move.tool_calls, start=1):
            await self._call_tool(call, index, response.id)
            if self._state.status != "running":
                return

    async def _request_move(self) -> Event | None:
        """Run the model request as a job; the committed ``model.response``, or None on failure."""
        step = self._state.step + 1
        args: dict[str, object] = {"model": self._model.name, "step": step}
        spec = JobSpec(
            job_id=self._clock.new_id(),
            key=idempotency_key(self._state.run_id, step, 0, args_digest(args)),
            kind="model",
            args={"model": self._model.name, "step": step},
            idempotent=True,
        )
        request = build_request(self._state, tuple(t.spec() for t in self._tools.values()))

        async def effect() -> JobOutcome:
            started = self._clock.monotonic()
            move: Move = await self._model.request(request)
            response = ModelResponse(
                job_id=spec.job_id,
                model=move.model or self._model.name,
                text=move.text,
                tool_calls=move.tool_calls,
                usage=move.usage,
                finish_reason=move.finish_reason,
                duration_ms=round((self._clock.monotonic() - started) * 1000),
            )
            return JobOutcome(ok=True, extra=(response,))

        responses: list[Event] = []

        async def emit(datas: Sequence[AnyEventData]) -> None:
            committed = await self._emit(datas)
            responses.extend(e for e in committed if e.kind == "model.response")

        outcome = await run_job(spec, effect, emit, self._clock)
        if not outcome.ok:
            await self._finish("failed", error=f"model request failed: {outcome.error}")
            return None
        return responses[0]

    # -- tool calls ----------------------------------------------------------

    async def _call_tool(self, call: ToolCallData, index: int, cause: str) -> None:
        (called,) = await self._emit(
            [ToolCalled(call_id=call.call_id, name=call.name, args=call.args)], cause
        )

        async def reply(ok: bool, output: str) -> None:
            await self._emit(
                [ToolReturned(call_id=call.call_id, name=call.name, ok=ok, output=output)],
                called.id,
            )

        if call.args_error is not None:
            return await reply(False, f"{call.name or 'tool call'}: {call.args_error}")
        tool = self._tools.get(call.name)
        if tool is None:
            return await reply(
                False,
                f"unknown tool {call.name!r}; the tools you can call are: {', '.join(self._tools)}",
            )
        context = ToolContext(Path(self._state.workspace), self._settings.tools)
        try:
            outcome = await tool.call(context, dict(call.args))
        except ToolError as exc:
            return await reply(False, str(exc))
        match outcome:
            case Reply():
                await reply(outcome.ok, outcome.output)
            case FileWrite():
                ok, output = await self._write(outcome, call, called.id)
                await reply(ok, output)
            case ShellCommand():
                ok, output = await self._shell(outcome, index, called.id)
                await reply(ok, output)
            case Finish():
                await reply(True, "the run is finished")
                await self._finish("succeeded", summary=outcome.summary)
            case _:
                assert_never(outcome)

    async def _write(self, write: FileWrite, call: ToolCallData, cause: str) -> tuple[bool, str]:
        """Apply a file write as a patch; ``(ok, text for the model)``."""
        try:
            change, files = await anyio.to_thread.run_sync(self._apply_write, write)
        except PatchError as exc:
            return False, str(exc)
        if not files:
            return True, f"{change.path} already has exactly this content; nothing changed"
        blobs = [change.after] if change.before is None else [change.before, change.after]
        patch = PatchApplied(patch_id=self._clock.new_id(), call_id=call.call_id, files=files)
        await self._emit([patch], cause, blobs)
        verb = "created" if change.before is None else "updated"
        return True, f"{verb} {change.path} ({len(change.after)} bytes)"

    def _apply_write(self, write: FileWrite) -> tuple[PlannedChange, tuple[FileChange, ...]]:
        """Plan and apply ``write`` (blocking file I/O; runs in a worker thread)."""
        workspace = Path(self._state.workspace).resolve()
        change = plan_write(workspace, write.target, write.content)
        if change.before != write.expected_before:
            raise PatchError(f"{change.path!r} changed on disk since it was read; read it again")
        if change.before == change.after:
            return change, ()
        return change, apply_changes(workspace, [change])

    async def _shell(self, command: ShellCommand, index: int, cause: str) -> tuple[bool, str]:
        """Run a shell command as a (non-idempotent) job; ``(ok, text for the model)``."""
        args: dict[str, object] = {"command": command.command, "timeout_s": command.timeout_s}
        digest = args_digest(args)
        spec = JobSpec(
            job_id=self._clock.new_id(),
            key=idempotency_key(self._state.run_id, self._state.step, index, digest),
            kind="shell",
            args={"command": command.command, "timeout_s": command.timeout_s},
            idempotent=False,
        )
        limits = self._settings.tools

        async def effect() -> JobOutcome:
            result = await run_shell(
                command.command,
                Path(self._state.workspace),
                timeout_s=command.timeout_s,
                env=scrub_env(self._environ),
                output_cap_bytes=limits.shell_output_cap_bytes,
            )
            error = None
            if result.timed_out:
                error = f"timed out after {command.timeout_s:g} s; the command was killed"
            elif result.exit_code != 0:
                error = f"exit code {result.exit_code}"
            return JobOutcome(
                ok=error is None, output=result.output, error=error, exit_code=result.exit_code
            )

        async def emit(datas: Sequence[AnyEventData]) -> None:
            await self._emit(datas, cause)

        outcome = await run_job(spec, effect, emit, self._clock)
        header = f"exit code {outcome.exit_code}"
        if outcome.error and outcome.exit_code is not None and "timed out" in outcome.error:
            header = outcome.error
        return outcome.ok, f"{header}\n{outcome.output}".rstrip("\n")
