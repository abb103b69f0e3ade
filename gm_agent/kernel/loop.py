"""The kernel loop: drive one run from its journal until it ends.

::

    take the run's lease (renewed by a heartbeat)
    state = latest checkpoint + fold(the events after it)
    loop:
        if the latest move has tool calls without results: decide the next one by
            policy (allow, deny, or ask: waiting for an approval) and carry it out
            (a call cut off by a crash is reconciled: recorded results are served,
            idempotent jobs re-run under the same key, others become job.ambiguous)
        else: at this safe point, checkpoint every N steps or T seconds;
            check the budgets (and for a loop), then ask the model for a move (a job)
    until the model finishes, the user interrupts, or it waits for a person
    (an approval, a raised budget, a look at a loop)
    checkpoint on the way out

The loop decides every next action from the folded state alone
(:func:`~gm_agent.kernel._decide.next_action`), so a fresh run, a run resumed
after a crash and ``gm replay --recorded`` go through the same code. Every event
is checked by ``evolve`` before it is appended, so an illegal transition never
reaches the journal.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, TypeVar, assert_never

import anyio
from pydantic import JsonValue

from gm_agent.clock import Clock, parse_timestamp
from gm_agent.errors import (
    GmAgentError,
    JournalError,
    LeaseLost,
    Superseded,
    ToolError,
    UserError,
)
from gm_agent.events import (
    AnyEventData,
    ApprovalGranted,
    ApprovalRequested,
    CheckpointSaved,
    Event,
    EventSource,
    JobAttemptFailed,
    JobResult,
    ModelFallback,
    ModelResponse,
    RunCancel,
    RunFinished,
    RunForked,
    RunInterrupt,
    RunResumed,
    RunStatus,
    RunStatusChanged,
    SandboxProbed,
    TerminalStatus,
    ToolCallData,
    ToolCalled,
    ToolReturned,
    UserMessage,
    new_event,
)
from gm_agent.faults import crash_point
from gm_agent.jobs import JobOutcome, JobRunner, JobSpec, ShellSandbox, probe_sandbox
from gm_agent.journal import DEFAULT_LEASE_S, CheckpointRecord, Journal, new_owner
from gm_agent.kernel._approvals import (
    APPROVAL_POLL_S,
    ApprovalMode,
    Verdict,
    rules_in_force,
    verdict,
)
from gm_agent.kernel._checkpoint import encode_state, load_state
from gm_agent.kernel._compaction import DEFAULT_WINDOW_TOKENS, plan_compaction
from gm_agent.kernel._decide import (
    INTERRUPTED,
    SKIPPED,
    CallTool,
    Correct,
    EndRun,
    Pause,
    RequestMove,
    SkipCall,
    budget_reason,
    cancel_error,
    loop_reason,
    model_attempts,
    model_job_key,
    next_action,
    shell_job_key,
)
from gm_agent.kernel._restore import plan_restore
from gm_agent.kernel._writer import WorkspaceWriter
from gm_agent.kernel.context import build_request
from gm_agent.kernel.state import TERMINAL, JobView, PatchView, RunState, evolve, fold
from gm_agent.llm import Delta, Model, ModelPool, Move, ToolSpec
from gm_agent.llm.prices import context_window_of, price_of
from gm_agent.policy import Redactor, network_rule
from gm_agent.settings import Settings
from gm_agent.tools import FileWrite, Finish, Reply, ShellCommand, Tool, ToolContext, ToolRegistry

__all__ = [
    "AMBIGUOUS_MESSAGE",
    "CONTROL_KINDS",
    "CONTROL_POLL_S",
    "EXIT_CODES",
    "EventObserver",
    "Kernel",
    "RunOutcome",
]

CONTROL_KINDS = ("run.cancel", "run.interrupt", "user.message")
"""Events other processes append to steer a run."""

log = logging.getLogger("gm_agent.kernel")

T = TypeVar("T")

EXIT_CODES: dict[RunStatus, int] = {
    "succeeded": 0,
    "failed": 1,
    "cancelled": 1,
    "waiting": 3,
    "paused": 130,
    # A run stopped by an error in gm itself is left `running` for `gm resume`.
    "running": 1,
    "created": 1,
}
"""``gm run`` exit code for the status a run stopped in (ARCHITECTURE.md, "Process model")."""

AMBIGUOUS_MESSAGE = (
    "outcome unknown: gm stopped while this command was running, so it may or may not "
    "have run, fully or in part. Check its effects before running it again."
)

STOPPED_MESSAGE = "stopped: the run was cancelled while this call ran; it may have partly run"

UNREAD_MESSAGE = (
    "not finished: the user sent a message while you worked (below); read it, then "
    "go on or call `finish` again"
)

CONTROL_POLL_S = 0.05
"""How often a running kernel looks for ``run.cancel``, ``run.interrupt`` and
preempting messages while a model request or a command is in flight, in seconds
(ARCHITECTURE.md: control events are taken within 100 ms)."""

EventObserver = Callable[[Event | Delta], None]
"""Called with each event right after it is committed, and with each piece of a
model's reply while it streams (a :class:`~gm_agent.llm.Delta`, never journaled:
the journal gets the whole ``model.response``). For live output."""


@dataclass(frozen=True)
class RunOutcome:
    """How a run stopped: its id, status, summary or error, and for a run left
    ``waiting``, the approval it ``needs``."""

    run_id: str
    status: RunStatus
    summary: str | None
    error: str | None
    needs: str | None = None

    @property
    def exit_code(self) -> int:
        """The process exit code for this outcome; see :data:`EXIT_CODES`."""
        return EXIT_CODES[self.status]


class Kernel:
    """Executes runs: the only code that appends a run's events while it runs.

    Args:
        journal: the workspace's journal.
        model: the model the run talks to.
        registry: the tools that exist; a run's allow-list selects from them.
        settings: workspace settings (tool limits).
        clock: time and ids.
        environ: the environment tools inherit, before secrets are removed.
        observer: called with every event as it is committed, and with each
            streamed piece of a model's reply; its errors are logged and it is
            then dropped, never stopping the run.
        lease_s: how long the run's lease lasts between heartbeats, in seconds.
        heartbeat: renew the lease in the background every ``lease_s / 3`` seconds,
            and watch for control events that must stop what is in flight (tests
            with a fake clock, whose sleeps return at once, turn it off; the loop
            still takes control events between actions).
        approvals: what to do when a call needs approval; see :data:`ApprovalMode`.
        models: where the run's fallback models come from (``None``: no fallback).
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
        lease_s: float = DEFAULT_LEASE_S,
        heartbeat: bool = True,
        approvals: ApprovalMode = "stop",
        models: ModelPool | None = None,
    ) -> None:
        self._journal = journal
        self._model: Model = model
        self._models = models
        self._registry = registry
        self._settings = settings
        self._clock = clock
        self._environ = environ
        self._observer = observer
        self._lease_s = lease_s
        self._heartbeat_on = heartbeat
        self._owner = new_owner(clock.new_id())
        self._lease_lost = False
        self._state = RunState()
        self._stored_nodes: set[str] = set()
        self._checkpointed = (0, 0.0)  # (step, monotonic seconds) of the last checkpoint
        self._tools: dict[str, Tool] = {}
        self._workspace_writer: WorkspaceWriter | None = None
        self._sandbox: ShellSandbox | None = None
        self._approvals = approvals
        self._redactor = Redactor(environ)
        self._called_since_start = False  # a tool call ran in this process (loop check)
        self._seen_seq = 0  # every event of the run up to here is folded in
        self._own_ids: set[str] = set()  # events this kernel committed after _seen_seq
        self._in_flight: tuple[Literal["model", "tool"], anyio.CancelScope] | None = None
        # A stop the watcher saw while nothing was in flight: (seq, what it stops).
        self._stop_pending: tuple[int, Literal["any", "model"]] | None = None

    @property
    def state(self) -> RunState:
        """The current fold of the run's committed events."""
        return self._state

    @property
    def owner(self) -> str:
        """This kernel's lease owner id, ``host:pid:nonce``."""
        return self._owner

    # -- executing a run -----------------------------------------------------

    async def execute(self, run_id: str) -> RunOutcome:
        """Drive run ``run_id`` until it ends or stops; fresh and resumed runs alike.

        Takes the run's lease first. A run found ``paused``, or ``running`` with no
        live holder (a crash), is resumed: ``run.resumed``, then reconciliation of
        whatever the stop cut off.

        Raises:
            RunLeased: another live process is executing the run.
            UserError: the run already ended.
            LeaseLost: another process took the lease over while we ran.

        Cancellation (Ctrl-C) records the run as ``paused`` and propagates. An
        error in gm itself records ``paused`` with the error as the reason, when
        the journal still takes writes, and propagates.
        """
        await self._journal.acquire_lease(run_id, self._owner, self._lease_s)
        error: Exception | None = None
        outcome: RunOutcome | None = None
        try:
            with anyio.CancelScope() as drive_scope:
                async with anyio.create_task_group() as tg:
                    if self._heartbeat_on:
                        tg.start_soon(self._heartbeat, run_id, drive_scope)
                        tg.start_soon(self._watch_controls, run_id)
                    try:
                        outcome = await self._drive(run_id)
                    except Exception as exc:  # re-raised below, outside the task group
                        error = exc
                    finally:
                        tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                if not self._lease_lost:
                    await self._journal.release_lease(run_id, self._owner)
        if self._lease_lost:
            raise LeaseLost(f"another process took run {run_id} over; this one stopped")
        if error is not None:
            raise error
        assert outcome is not None
        return outcome

    async def _heartbeat(self, run_id: str, drive_scope: anyio.CancelScope) -> None:
        while True:
            await self._clock.sleep(self._lease_s / 3)
            try:
                await self._journal.renew_lease(run_id, self._owner, self._lease_s)
            except LeaseLost:
                self._lease_lost = True
                drive_scope.cancel()
                return
            except JournalError as exc:  # busy or briefly unwritable: the lease still runs
                log.warning("could not renew the lease of run %s (%s); retrying", run_id, exc)

    async def _watch_controls(self, run_id: str) -> None:
        """Stop what is in flight when a control event asks for it: ``run.cancel``
        stops anything; ``run.interrupt`` and a preempting message stop a model
        request (asked again later) and let a command finish. The loop then acts
        on the event at its next safe point."""
        after = await self._journal.last_seq()
        while True:
            await self._clock.sleep(CONTROL_POLL_S)
            try:
                events = await self._journal.read(run_id, after_seq=after, kinds=CONTROL_KINDS)
            except JournalError as exc:  # busy for a moment: the loop still catches up
                log.debug("could not look for control events of run %s: %s", run_id, exc)
                continue
            for event in events:
                after = max(after, event.seq or 0)
                data = event.data
                stops: Literal["any", "model"] | None = (
                    "any"
                    if isinstance(data, RunCancel)
                    else "model"
                    if isinstance(data, RunInterrupt)
                    or (isinstance(data, UserMessage) and data.preempt and event.source == "user")
                    else None
                )
                if stops is None or (event.seq or 0) <= self._seen_seq:
                    continue  # not a stop, or the loop has taken it in already
                if self._in_flight is not None and (
                    stops == "any" or self._in_flight[0] == "model"
                ):
                    self._in_flight[1].cancel()
                elif self._stop_pending is None or stops == "any":
                    self._stop_pending = (event.seq or 0, stops)

    async def _drive(self, run_id: str) -> RunOutcome:
        self._state, self._stored_nodes = await load_state(self._journal, run_id)
        self._seen_seq = self._state.last_seq
        self._checkpointed = (self._state.step, self._clock.monotonic())
        if self._state.status in ("succeeded", "failed", "cancelled"):
            raise UserError(f"run {run_id} already {self._state.status}; nothing to resume")
        self._tools = {t.name: t for t in self._registry.select(self._state.tools)}
        try:
            if self._state.status == "created" and self._state.parent_id is not None:
                await self._restore_fork()  # may end the run: files it cannot restore
            if self._state.status in TERMINAL:
                pass
            elif self._state.status == "created":
                await self._set_status("running")
            else:
                await self._emit([RunResumed(owner=self._owner, status=self._state.status)])
                if self._state.status == "waiting" and self._state.pending_approval():
                    await self._await_answer()
                elif self._state.status != "running":
                    await self._set_status("running", "resumed")
            if self._state.status == "running":
                await self._probe_sandbox()
            while self._state.status == "running":
                await self._advance()
            await self._checkpoint()
        except anyio.get_cancelled_exc_class():
            await self._stop("interrupted by the user")
            raise
        except Exception as exc:
            await self._stop(f"stopped by an error in gm: {exc}")
            raise
        pending = self._state.pending_approval()
        needs = (
            f"approval of {pending.name}({pending.args}): {pending.reason}"
            if pending
            else self._state.waiting_reason
        )
        return RunOutcome(run_id, self._state.status, self._state.summary, self._state.error, needs)

    async def _probe_sandbox(self) -> None:
        """Learn how this machine confines shell commands, and journal it."""
        wanted = self._settings.sandbox
        sandbox = await anyio.to_thread.run_sync(
            lambda: probe_sandbox(
                Path(self._state.workspace),
                wanted=wanted.backend,
                network=wanted.network or self._state.network,
                max_file_bytes=wanted.max_file_bytes,
                max_memory_bytes=wanted.max_memory_bytes or None,
            )
        )
        self._sandbox = sandbox
        self._workspace_writer = None  # made again with the sandbox when next needed
        probed = SandboxProbed(
            backend=sandbox.backend, network=sandbox.network, detail=sandbox.detail
        )
        await self._emit([probed])
        if wanted.backend in ("bubblewrap", "landlock") and not sandbox.effective:
            await self._finish(
                "failed",
                error=f"gm.toml asks for the {wanted.backend} sandbox, but {sandbox.detail}; "
                'fix that, or set [sandbox] backend = "auto" to use what works here',
            )

    async def _restore_fork(self) -> None:
        """A fork's first act: files back to the fork point, as its first patch.

        After a crash, a restore cut off is finished; one already applied is kept.
        Files edited since the parent changed them end the run as failed, unless
        the fork was made with ``--force``.
        """
        state = self._state
        assert state.parent_id is not None and state.fork_seq is not None
        (first,) = await self._journal.read(state.run_id, limit=1)
        assert isinstance(first.data, RunForked)
        force = first.data.force_restore
        started = [p for p in state.patches if p.status == "intent"]
        if started:
            ok, output = await self._writer().complete(
                started[0].patch_id, started[0].files, None, None, force=force
            )
        elif not state.patches:
            workspace = Path(state.workspace)
            plan = await plan_restore(self._journal, workspace, state.parent_id, state.fork_seq)
            if plan.edited and not force:
                ok, output = False, _edited_message(plan.edited)
            elif not plan.changes:
                return
            else:
                ok, output = await self._writer().restore(plan.changes, force)
        else:
            return
        if not ok:
            await self._finish("failed", error=f"cannot restore the fork point: {output}")

    async def _stop(self, reason: str) -> None:
        """Record ``paused`` after an interruption, from what the journal really holds."""
        if self._lease_lost:
            return
        with anyio.CancelScope(shield=True):
            try:
                self._state, self._stored_nodes = await load_state(
                    self._journal, self._state.run_id
                )
                if self._state.status == "running":
                    await self._set_status("paused", reason)
                    await self._checkpoint()
            except GmAgentError as exc:
                log.warning("could not record the stop of run %s: %s", self._state.run_id, exc)

    # -- events ------------------------------------------------------------

    async def _emit(
        self,
        datas: Sequence[AnyEventData],
        cause: str | None = None,
        blobs: Iterable[bytes] = (),
        source: EventSource | None = None,
        checkpoint: CheckpointRecord | None = None,
        fenced: bool = False,
    ) -> list[Event]:
        """Check ``datas`` against the state (evolve), commit them, then fold them in.

        ``source`` overrides each event's usual source (a shell command's patch is
        ``job``'s); ``checkpoint`` is committed in the same transaction. Error
        texts of jobs and runs (a provider's message, an exception) are redacted first.
        ``fenced``: a decision, committed only if no one steered the run since the
        kernel last caught up (else ``Superseded``, and nothing is written).
        """
        datas = [self._redacted_error(d) for d in datas]
        events = [
            new_event(
                self._clock,
                self._state.run_id,
                source or _source(d),
                d,
                cause,
            )
            for d in datas
        ]
        fold(events, self._state)  # raises IllegalTransition before anything is written
        committed: list[Event] = []
        with anyio.CancelScope(shield=True):  # a commit and its fold are never split
            committed = await self._journal.append(
                events,
                blobs,
                lease_owner=self._owner,
                checkpoint=checkpoint,
                fence=(self._state.run_id, self._seen_seq) if fenced else None,
            )
        self._own_ids.update(event.id for event in committed)
        for event in committed:
            self._state = evolve(self._state, event)
            self._notify(event)
        return committed

    def _redacted_error(self, data: AnyEventData) -> AnyEventData:
        if isinstance(data, JobAttemptFailed | JobResult | RunFinished) and data.error:
            redacted = self._redactor.redact(data.error)
            if redacted != data.error:
                return data.model_copy(update={"error": redacted})
        return data

    def _writer(self) -> WorkspaceWriter:
        """What carries out this run's file writes and shell commands."""
        if self._workspace_writer is None:
            self._workspace_writer = WorkspaceWriter(
                self._journal,
                self._clock,
                Path(self._state.workspace),
                self._owner,
                self._emit,
                self._settings.tools,
                self._environ,
                self._sandbox,
                self._redactor.redact,
                self._queued_for_writer,
            )
        return self._workspace_writer

    async def _queued_for_writer(self, holder: str | None) -> None:
        """Show that the run queues for another process's writer lock (``waiting``,
        with who holds it), and when the wait is over."""
        status = self._state.status
        if holder is not None and status == "running":
            reason = f"writer lock: queued behind {holder}"
            await self._emit([RunStatusChanged.between("running", "waiting", reason)])
        elif holder is None and status == "waiting" and self._state.pending_approval() is None:
            await self._emit([RunStatusChanged.between("waiting", "running", "writer lock free")])

    def _runner(self, cause: str | None) -> JobRunner:
        """A job runner whose events are caused by ``cause``."""

        async def emit(datas: Sequence[AnyEventData], blobs: Sequence[bytes]) -> None:
            await self._emit(datas, cause, blobs)

        return JobRunner(emit, self._clock)

    def announce(self, events: Iterable[Event]) -> None:
        """Show events committed by someone else (e.g. ``create_run``) to the observer."""
        for event in events:
            self._notify(event)

    def _notify(self, event: Event | Delta) -> None:
        if self._observer is None:
            return
        try:
            self._observer(event)
        except Exception as exc:  # a closed pipe must not stop the run
            log.warning("live output stopped (%s); the run goes on, see `gm log`", exc)
            self._observer = None

    async def _set_status(self, to: RunStatus, reason: str | None = None) -> None:
        await self._emit([RunStatusChanged.between(self._state.status, to, reason)])

    async def _finish(
        self,
        status: TerminalStatus,
        *,
        summary: str | None = None,
        error: str | None = None,
        first: Sequence[AnyEventData] = (),
        cause: str | None = None,
        fenced: bool = False,
    ) -> None:
        """End the run; ``first`` events are committed in the same transaction, before.
        ``fenced``: only if no one steered the run meanwhile (see :meth:`_emit`)."""
        await self._emit(
            [
                *first,
                RunStatusChanged.between(self._state.status, status),
                RunFinished(status=status, summary=summary, error=error),
            ],
            cause,
            fenced=fenced,
        )

    # -- one action ------------------------------------------------------------

    async def _advance(self) -> None:
        """Take the next action the state calls for."""
        await self._catch_up()
        try:
            await self._act()
        except Superseded as exc:  # steered meanwhile: take it in and decide again
            log.debug("decision superseded: %s", exc)

    async def _act(self) -> None:
        """Carry out what :func:`next_action` decides on the current state."""
        match next_action(self._state):
            case CallTool(index, call):
                await self._call_tool(call, index)
            case SkipCall(_, call):
                await self._reply(call, False, SKIPPED, self._state.last_response_id)
            case Pause(reason):
                await self._set_status("paused", reason)
            case EndRun(status, summary, error):
                closing = await self._settle_open_calls() if status == "cancelled" else []
                await self._finish(status, summary=summary, error=error, first=closing, fenced=True)
            case Correct(text):
                await self._emit([UserMessage(text=text)], source="kernel")
            case RequestMove():
                if self._checkpoint_due():
                    await self._checkpoint()
                reason = budget_reason(self._state, self._elapsed_s())
                if reason is None and self._called_since_start:
                    reason = loop_reason(self._state)
                if reason is not None:  # checked before spending; resumable
                    await self._set_status("waiting", reason)
                    return
                await self._compact()
                await self._stoppable("model", self._request_move)

    async def _settle_open_calls(self) -> list[ToolReturned]:
        """Before a cancelled run ends: settle the calls a stop cut off, running
        nothing again (a command cut off by a crash is ``job.ambiguous``, with a
        patch for what it changed; a half-applied patch is completed), and give
        each a result, so the run ends at rest."""
        open_ids = set(self._state.open_calls)
        calls = [c for _, c in self._state.pending_calls() if c.call_id in open_ids]
        for call in calls:
            job = self._state.job_for_call(call.call_id)
            patch = self._state.patch_for_call(call.call_id)
            if job is not None and job.status == "started":
                await self._writer().recover_ambiguous(job, AMBIGUOUS_MESSAGE, None)
            elif patch is not None and patch.status == "intent":
                await self._writer().complete(patch.patch_id, patch.files, call.call_id, None)
        return [
            ToolReturned(call_id=c.call_id, name=c.name, ok=False, output=STOPPED_MESSAGE)
            for c in calls
        ]

    async def _stoppable(
        self, kind: Literal["model", "tool"], action: Callable[[], Awaitable[T]]
    ) -> T | None:
        """``action``'s result, or ``None`` when a control event stopped it
        (:meth:`_watch_controls`); what it had started is journaled as cancelled."""
        pending = self._stop_pending
        if pending is not None and pending[0] > self._seen_seq:
            if pending[1] == "any" or kind == "model":
                return None  # stopped before it started: the loop takes the event in next
        with anyio.CancelScope() as scope:
            self._in_flight = (kind, scope)
            try:
                return await action()
            finally:
                self._in_flight = None
        return None

    def _elapsed_s(self) -> float:
        """Seconds since the run was created (its wall-time budget)."""
        created = parse_timestamp(self._state.created_at) if self._state.created_at else None
        return (self._clock.now() - created).total_seconds() if created else 0.0

    # -- checkpoints -----------------------------------------------------------

    def _checkpoint_due(self) -> bool:
        every = self._settings.checkpoint
        step, at = self._checkpointed
        return (
            self._state.step - step >= every.every_steps
            or self._clock.monotonic() - at >= every.every_s
        )

    async def _checkpoint(self) -> None:
        """Save the state as a checkpoint, with its ``checkpoint.saved``, if at a safe point."""
        await self._catch_up()  # the checkpoint must hold every event up to its seq
        state = self._state
        if not state.at_rest():
            return  # not a safe point: something is in flight
        encoded = encode_state(state, self._stored_nodes)
        saved = CheckpointSaved(
            upto_seq=state.last_seq, state_hash=encoded.state_hash, steps=state.step
        )
        await self._emit(
            [saved],
            blobs=encoded.nodes.values(),
            checkpoint=encoded.record(state.run_id, state.last_seq),
        )
        self._stored_nodes.update(encoded.nodes)
        self._checkpointed = (state.step, self._clock.monotonic())
        crash_point("checkpoint.after_save")

    # -- what the model sees ----------------------------------------------------

    def _tool_specs(self) -> tuple[ToolSpec, ...]:
        return tuple(t.spec() for t in self._tools.values())

    async def _window_tokens(self) -> int:
        """The current model's context window in tokens: ``[context] window_tokens``,
        else the model's own figure, else genai-prices' table, else a default."""
        configured = self._settings.context.window_tokens or self._model.context_window
        if configured is not None:
            return configured
        listed = await anyio.to_thread.run_sync(
            context_window_of, self._model.pricing, self._model.name.partition(":")[2]
        )
        return listed or DEFAULT_WINDOW_TOKENS

    async def _compact(self) -> None:
        """Journal a ``context.compacted`` when the next request nears the window."""
        compacted = plan_compaction(
            self._state,
            self._tool_specs(),
            await self._window_tokens(),
            self._settings.context.compact_at,
        )
        if compacted is not None:
            await self._emit([compacted])

    async def _request_move(self) -> ModelResponse | None:
        """Run the model request as an idempotent job; its response, or None on failure."""
        step = self._state.step + 1
        open_model = [j for j in self._state.open_jobs() if j.job_kind == "model"]
        spec = (
            replace(_spec_of(open_model[-1]), timeout_s=self._settings.model_timeout_s)
            if open_model  # cut off by a crash: same job, same key
            else JobSpec(
                job_id=self._clock.new_id(),
                key=model_job_key(
                    self._state.run_id, step, self._model.name, model_attempts(self._state, step)
                ),
                kind="model",
                args={"model": self._model.name, "step": step},
                idempotent=True,
                timeout_s=self._settings.model_timeout_s,
            )
        )
        request = build_request(self._state, self._tool_specs(), idempotency_key=spec.key)

        async def effect() -> JobOutcome:
            started = self._clock.monotonic()
            watched = self._notify if self._observer is not None else None
            move: Move = await self._model.request(request, watched)
            asked = self._model.name.partition(":")[2]
            price = await anyio.to_thread.run_sync(
                price_of, self._model.pricing, (move.model, asked), move.usage
            )
            response = ModelResponse(
                job_id=spec.job_id,
                model=move.model or self._model.name,
                text=move.text,
                tool_calls=move.tool_calls,
                usage=move.usage,
                finish_reason=move.finish_reason,
                duration_ms=round((self._clock.monotonic() - started) * 1000),
                provider_data=move.provider_data,
                cost_usd=price.cost_usd,
            )
            return JobOutcome(ok=True, extra=(response,))

        runner = self._runner(None)
        if not open_model:  # a decision: only if no one steered the run meanwhile
            await self._emit([runner.intent(spec)], fenced=True)
            crash_point("job.after_intent")
        outcome = await runner.run(spec, effect, intent_committed=True)
        if not outcome.ok:
            following = self._fallback_model()
            if outcome.outage and following is not None and self._models is not None:
                fallback = ModelFallback(
                    from_model=self._model.name, to_model=following, reason=outcome.error or ""
                )
                await self._emit([fallback])
                self._model = self._models.get(following)
                return await self._request_move()  # the list is finite: this ends
            await self._finish("failed", error=f"model request failed: {outcome.error}")
            return None
        (response,) = outcome.extra
        assert isinstance(response, ModelResponse)
        return response

    def _fallback_model(self) -> str | None:
        """The model after the current one in the run's fallbacks, if any."""
        chain = self._state.fallbacks
        current = self._model.name
        rest = chain[chain.index(current) + 1 :] if current in chain else chain
        return next((m for m in rest if m != current), None)

    # -- tool calls ----------------------------------------------------------

    async def _call_tool(self, call: ToolCallData, index: int) -> None:
        if call.call_id in self._state.open_calls:  # announced before a stop
            events = await self._journal.read(self._state.run_id)
            called = [
                e.id
                for e in events
                if isinstance(e.data, ToolCalled) and e.data.call_id == call.call_id
            ]
            await self._reconcile_call(call, index, called[-1] if called else None)
            return
        decided = await self._decide(call)
        if decided is None:  # waiting for a person's answer
            return
        (called,) = await self._emit(
            [
                ToolCalled(
                    call_id=call.call_id,
                    name=call.name,
                    args=call.args,
                    decision=None if decided.risk is None else decided.kind,  # type: ignore[arg-type]
                    risk=decided.risk,
                    rule=decided.rule,
                )
            ],
            self._state.last_response_id,
            fenced=True,
        )
        if decided.kind in ("deny", "denied"):
            return await self._reply(call, False, f"not run: {decided.reason}", called.id)
        await self._carry_out(call, index, called.id)

    # -- approvals -------------------------------------------------------------

    async def _decide(self, call: ToolCallData) -> Verdict | None:
        """The policy's verdict on ``call``; ``None`` when it waits for an approval."""
        decided = verdict(
            self._state,
            call,
            known_tools=tuple(self._tools),
            sandboxed=self._sandbox is not None and self._sandbox.effective,
            policy=self._settings.policy,
        )
        if decided.kind != "ask":
            return decided
        asked = self._state.approval_for(call.call_id)
        if asked is not None and asked.answer is None:  # asked before a pause: wait on it
            await self._emit([RunStatusChanged.between("running", "waiting", "approval")])
            await self._await_answer()
            return None
        assert decided.risk is not None and decided.rule is not None
        requested = ApprovalRequested(
            call_id=call.call_id,
            name=call.name,
            args=call.args,
            risk=decided.risk,
            rule=decided.rule,
            reason=decided.reason,
        )
        if self._approvals == "yes":
            granted = ApprovalGranted(call_id=call.call_id, by="--yes")
            await self._emit([requested, granted], self._state.last_response_id)
            return Verdict("approved", decided.risk, decided.rule, "approved by --yes")
        waiting = RunStatusChanged.between("running", "waiting", "approval")
        await self._emit([requested, waiting], self._state.last_response_id)
        await self._await_answer()
        return None

    async def _await_answer(self) -> None:
        """Wait for the answer to the pending approval, then go on running.

        ``stop`` (unattended) leaves the run ``waiting``; ``yes`` grants it now.
        """
        pending = self._state.pending_approval()
        if pending is not None and self._approvals == "stop":
            return
        if pending is not None and self._approvals == "yes":
            await self._emit([ApprovalGranted(call_id=pending.call_id, by="--yes")])
        while self._state.pending_approval() is not None:
            if self._state.cancel_requested:
                return await self._finish(
                    "cancelled", error=cancel_error(self._state.cancel_reason)
                )
            if self._state.interrupt_requested:
                return await self._set_status("paused", INTERRUPTED)
            await self._clock.sleep(APPROVAL_POLL_S)
            await self._catch_up()
        await self._set_status("running", "answered")

    async def _catch_up(self) -> None:
        """Take in the events other processes appended to this run (messages,
        interrupts, cancels, answers).

        When there are any, the state is folded again from the journal (latest
        checkpoint and tail), so it is the fold of the events in journal order even
        though this kernel applied its own events before theirs.
        """
        events = await self._journal.read(self._state.run_id, after_seq=self._seen_seq)
        foreign = [e for e in events if e.id not in self._own_ids]
        self._seen_seq = max([self._seen_seq, *(e.seq or 0 for e in events)])
        self._own_ids.clear()
        if self._stop_pending is not None and self._stop_pending[0] <= self._seen_seq:
            self._stop_pending = None  # folded in: the decisions account for it now
        if foreign:
            self._state, self._stored_nodes = await load_state(self._journal, self._state.run_id)
            for event in foreign:
                self._notify(event)

    async def _reply(
        self,
        call: ToolCallData,
        ok: bool,
        output: str,
        cause: str | None,
        *,
        malformed: bool = False,
    ) -> None:
        crash_point("tool.before_returned")
        self._called_since_start = True
        output = self._redactor.redact(output)  # secrets never reach the journal or the model
        returned = ToolReturned(
            call_id=call.call_id, name=call.name, ok=ok, output=output, malformed=malformed
        )
        await self._emit([returned], cause)

    async def _carry_out(self, call: ToolCallData, index: int, cause: str | None) -> None:
        if call.args_error is not None:
            return await self._reply(
                call, False, f"{call.name or 'tool call'}: {call.args_error}", cause, malformed=True
            )
        tool = self._tools.get(call.name)
        if tool is None:
            known = ", ".join(self._tools)
            return await self._reply(
                call,
                False,
                f"unknown tool {call.name!r}; the tools you can call are: {known}",
                cause,
                malformed=True,
            )
        context = ToolContext(Path(self._state.workspace), self._settings.tools)
        try:
            outcome = await tool.call(context, dict(call.args))
        except ToolError as exc:
            return await self._reply(call, False, str(exc), cause)
        match outcome:
            case Reply():
                await self._reply(call, outcome.ok, outcome.output, cause)
            case FileWrite():
                ok, output = await self._writer().write(outcome, call.call_id, cause)
                await self._reply(call, ok, output, cause)
            case ShellCommand():
                shell = outcome
                ran = await self._stoppable("tool", lambda: self._shell(shell, call, index, cause))
                if ran is not None:  # else stopped by `gm cancel`: the job is recorded cancelled
                    await self._reply(call, *ran, cause)
            case Finish() if self._state.inbox:  # a message came in while it worked
                await self._reply(call, False, UNREAD_MESSAGE, cause)
            case Finish():  # the reply and the end are one commit: no crash can split them
                crash_point("tool.before_returned")
                returned = ToolReturned(
                    call_id=call.call_id, name=call.name, ok=True, output="the run is finished"
                )
                await self._finish(
                    "succeeded", summary=outcome.summary, first=[returned], cause=cause, fenced=True
                )
            case _:
                assert_never(outcome)

    async def _reconcile_call(self, call: ToolCallData, index: int, cause: str | None) -> None:
        """Finish a tool call that a stop cut off, without repeating a recorded effect."""
        job = self._state.job_for_call(call.call_id)
        patch = self._state.patch_for_call(call.call_id)
        if job is not None:
            match job.status:
                case "succeeded" | "failed":
                    assert job.result is not None
                    ok, output = await self._writer().served(job.result)
                    await self._reply(call, ok, output, cause)
                case "cancelled":
                    await self._reply(
                        call,
                        False,
                        "the command was stopped by an interruption; it may have partly run",
                        cause,
                    )
                case "ambiguous":
                    await self._reply(call, False, AMBIGUOUS_MESSAGE, cause)
                case "started" if job.idempotent:
                    writer = self._writer()
                    ok, output = await writer.shell(_spec_of(job), cause, intent_committed=True)
                    await self._reply(call, ok, output, cause)
                case "started":
                    await self._writer().recover_ambiguous(job, AMBIGUOUS_MESSAGE, cause)
                    await self._reply(call, False, AMBIGUOUS_MESSAGE, cause)
            return
        if patch is not None and patch.status == "intent":
            writer = self._writer()
            ok, output = await writer.complete(patch.patch_id, patch.files, call.call_id, cause)
            await self._reply(call, ok, output, cause)
            return
        if patch is not None:  # applied (or conflicted) before the stop: its record stands
            await self._reply(call, patch.status == "applied", _patch_reply(patch), cause)
            return
        await self._carry_out(call, index, cause)  # nothing started: reads, finish

    # -- shell commands --------------------------------------------------------

    async def _shell(
        self, command: ShellCommand, call: ToolCallData, index: int, cause: str | None
    ) -> tuple[bool, str]:
        """Run a shell command as a (non-idempotent) job; ``(ok, text for the model)``.

        A rule with ``network = true`` that matches the line lets it reach the
        network; the grant is journaled with the job's intent (``args.network``).
        """
        args: dict[str, JsonValue] = {"command": command.command, "timeout_s": command.timeout_s}
        rules = rules_in_force(self._settings.policy, self._state)
        if network_rule(call.name, call.args, rules) is not None:
            args["network"] = True
        spec = JobSpec(
            job_id=self._clock.new_id(),
            key=shell_job_key(self._state.run_id, self._state.step, index, command),
            kind="shell",
            args=args,
            idempotent=False,
            call_id=call.call_id,
        )
        return await self._writer().shell(spec, cause)


def _edited_message(paths: Sequence[str]) -> str:
    names = ", ".join(repr(p) for p in paths)
    return (
        f"{names} changed since the parent run changed them (by you, or by another run "
        "such as an earlier fork: `gm undo` it first); fork again with --force to overwrite"
    )


def _patch_reply(patch: PatchView) -> str:
    if patch.status == "conflict":
        return "the files changed on disk since they were read; read them again"
    return "; ".join(f"{f.op} {f.path}" for f in patch.files)


def _spec_of(job: JobView) -> JobSpec:
    return JobSpec(
        job_id=job.job_id,
        key=job.key,
        kind=job.job_kind,
        args=job.args,
        idempotent=job.idempotent,
        call_id=job.call_id,
    )


def _source(data: AnyEventData) -> EventSource:
    """Who causes an event the kernel commits (ARCHITECTURE.md, "source")."""
    sources: dict[str, EventSource] = {
        "user": "user",
        "model": "model",
        "job": "job",
        "patch": "patch",
    }
    if data.kind == "model.fallback":  # the kernel's decision, not the model's move
        return "kernel"
    return sources.get(data.kind.partition(".")[0], "kernel")
