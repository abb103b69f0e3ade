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

:class:`Kernel` is put together from one module a concept: this one holds the
loop (lease, drive, the next action, checkpoints, stops); what its parts share
is in :mod:`~gm_agent.kernel._core`, taking in other processes' control events
in :mod:`~gm_agent.kernel._controls`, carrying out tool calls in
:mod:`~gm_agent.kernel._calls` and asking the model in
:mod:`~gm_agent.kernel._requests`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from gm_agent.clock import parse_timestamp
from gm_agent.errors import GmAgentError, JournalError, LeaseLost, Superseded, UserError
from gm_agent.events import (
    CheckpointSaved,
    Event,
    RunForked,
    RunResumed,
    RunStatus,
    SandboxProbed,
    UserMessage,
)
from gm_agent.faults import crash_point
from gm_agent.jobs import probe_sandbox
from gm_agent.kernel._calls import AMBIGUOUS_MESSAGE, ToolCalls
from gm_agent.kernel._calls import STOPPED_MESSAGE as STOPPED_MESSAGE
from gm_agent.kernel._calls import UNREAD_MESSAGE as UNREAD_MESSAGE
from gm_agent.kernel._checkpoint import encode_state, load_state
from gm_agent.kernel._controls import CONTROL_KINDS, CONTROL_POLL_S
from gm_agent.kernel._core import EventObserver, log
from gm_agent.kernel._decide import (
    SKIPPED,
    CallTool,
    Correct,
    EndRun,
    Pause,
    RequestMove,
    SkipCall,
    budget_reason,
    loop_reason,
    next_action,
)
from gm_agent.kernel._live import LiveTap
from gm_agent.kernel._requests import ModelRequests
from gm_agent.kernel._restore import plan_restore
from gm_agent.kernel.state import TERMINAL, RunState

__all__ = [
    "AMBIGUOUS_MESSAGE",
    "CONTROL_KINDS",
    "CONTROL_POLL_S",
    "EXIT_CODES",
    "EventObserver",
    "Kernel",
    "RunOutcome",
]

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


class Kernel(ToolCalls, ModelRequests):
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
                    self._task_group = tg  # where child runs (spawn_agent) are executed
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
            self._task_group = None
            if self._live is not None:
                self._live.clear()  # nothing streams once the run stops here
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

    async def _drive(self, run_id: str) -> RunOutcome:
        """Load the run, take it over, then take the next action until it stops."""
        await self._load(run_id)
        self._tools = {t.name: t for t in self._registry.select(self._state.tools)}
        if self._state.workspace:
            self._live = LiveTap(Path(self._state.workspace), run_id)
        try:
            if self._state.status == "created" and self._state.parent_id is not None:
                await self._restore_fork()  # may end the run: files it cannot restore
            if self._state.status not in TERMINAL:
                await self._take_over()
            if self._state.status == "running":
                await self._probe_sandbox()
                self._start_children()  # children a stop paused go on with the parent
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

    async def _load(self, run_id: str) -> None:
        """State = latest checkpoint + fold of the tail.

        Raises:
            UserError: the run already ended.
        """
        self._state, self._stored_nodes = await load_state(self._journal, run_id)
        self._seen_seq = self._state.last_seq
        self._checkpointed = (self._state.step, self._clock.monotonic())
        if self._state.status in TERMINAL:
            raise UserError(f"run {run_id} already {self._state.status}; nothing to resume")

    async def _take_over(self) -> None:
        """``created -> running``; a stopped run is resumed (``run.resumed``), and
        one waiting for an approval waits on for the answer."""
        if self._state.status == "created":
            return await self._set_status("running")
        await self._emit([RunResumed(owner=self._owner, status=self._state.status)])
        if self._state.status == "waiting" and self._state.pending_approval():
            await self._await_answer()
        elif self._state.status != "running":
            await self._set_status("running", "resumed")

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
                state = self._state
                waits_on_us = state.status == "waiting" and state.pending_approval() is None
                if state.status == "running" or waits_on_us:  # children, the writer lock
                    await self._set_status("paused", reason)
                    await self._checkpoint()
            except GmAgentError as exc:
                log.warning("could not record the stop of run %s: %s", self._state.run_id, exc)

    def announce(self, events: Iterable[Event]) -> None:
        """Show events committed by someone else (e.g. ``create_run``) to the observer."""
        for event in events:
            self._notify(event)

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
                await self._pause_children(reason)  # interrupting a run reaches its children
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
        encoded = encode_state(state, self._stored_nodes, self._item_codes)
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


def _edited_message(paths: Sequence[str]) -> str:
    names = ", ".join(repr(p) for p in paths)
    return (
        f"{names} changed since the parent run changed them (by you, or by another run "
        "such as an earlier fork: `gm undo` it first); fork again with --force to overwrite"
    )
