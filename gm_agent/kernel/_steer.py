"""``gm send``, ``gm interrupt`` and ``gm cancel``: steer a run from any process.

Each is an event appended to the run (``user.message``, ``run.interrupt``,
``run.cancel``, source ``user``); no lease is needed, because only the kernel
executing the run acts on them. A live kernel takes them within
:data:`~gm_agent.kernel.loop.CONTROL_POLL_S` while something is in flight, and
between actions otherwise. A run no process executes takes a message when it
is resumed; cancelling it is done here, under its lease.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio

from gm_agent.clock import Clock, SystemClock
from gm_agent.errors import RunLeased, UserError
from gm_agent.events import (
    AnyEventData,
    RunCancel,
    RunFinished,
    RunInterrupt,
    RunStatus,
    RunStatusChanged,
    UserMessage,
    new_event,
)
from gm_agent.journal import Journal, RunRow, new_owner
from gm_agent.kernel._checkpoint import load_state
from gm_agent.kernel._decide import cancel_error
from gm_agent.kernel._run import open_existing, resume_run
from gm_agent.kernel._scheme_record import agent_runs_of
from gm_agent.kernel.state import TERMINAL, RunState, fold
from gm_agent.policy import Redactor
from gm_agent.settings import load_settings

__all__ = ["SETTLE_S", "Steered", "cancel_run", "interrupt_run", "send_message"]

SETTLE_S = 10.0
"""How long ``gm interrupt`` and ``gm cancel`` wait for a live run to act, in seconds."""


@dataclass(frozen=True)
class Steered:
    """The run steered, whether a live process executes it, and its status after."""

    run_id: str
    live: bool
    status: RunStatus


async def _find(journal: Journal, run_ref: str) -> tuple[str, RunRow]:
    """The id and row of the run ``run_ref`` names. Raises ``RunNotFound``."""
    run_id = await journal.resolve_run(run_ref)
    return run_id, await journal.get_run(run_id)


async def _is_live(journal: Journal, run_id: str) -> bool:
    row = await journal.get_run(run_id)
    return row.lease_owner is not None and not row.orphaned


async def _settle(
    journal: Journal, run_id: str, done: frozenset[RunStatus], clock: Clock
) -> RunStatus:
    """Wait up to :data:`SETTLE_S` for the run's status to be one of ``done``."""
    with anyio.move_on_after(SETTLE_S):
        while (status := (await journal.get_run(run_id)).status) not in done:
            await clock.sleep(0.02)
        return status
    return (await journal.get_run(run_id)).status


async def _open(workspace: Path, environ: Mapping[str, str], clock: Clock) -> Journal:
    workspace = Path(await anyio.Path(workspace).resolve())
    return await open_existing(load_settings(workspace, environ), clock)


async def send_message(
    workspace: Path,
    run_ref: str,
    environ: Mapping[str, str],
    text: str,
    *,
    preempt: bool = False,
    clock: Clock | None = None,
) -> Steered:
    """Send ``text`` to run ``run_ref`` as a ``user.message``.

    A live run takes it after its current step (``preempt``: at the next safe
    point, before anything else); a stopped run, when it is resumed.

    Raises:
        RunNotFound: no such run.
        UserError: the message is empty, or the run has ended.
    """
    if not text.strip():
        raise UserError("the message is empty")
    clock = clock or SystemClock()
    async with await _open(workspace, environ, clock) as journal:
        run_id, row = await _find(journal, run_ref)
        if row.status in TERMINAL:
            raise UserError(
                f"run {run_id} already {row.status}; fork it to go on: `gm fork {run_id}`"
            )
        message = UserMessage(text=Redactor(environ).redact(text), preempt=preempt)
        (sent,) = await journal.append([new_event(clock, run_id, "user", message)])
        after = await journal.get_run(run_id)
        finished = await journal.read(run_id, kinds=["run.finished"])
        if finished and (finished[0].seq or 0) < (sent.seq or 0):  # it ended first
            raise UserError(
                f"run {run_id} {after.status} before the message arrived; no model will read "
                f"it. Go on from there with `gm fork {run_id} --message ...`"
            )
        return Steered(run_id, await _is_live(journal, run_id), after.status)


async def interrupt_run(
    workspace: Path,
    run_ref: str,
    environ: Mapping[str, str],
    *,
    reason: str | None = None,
    clock: Clock | None = None,
) -> Steered:
    """Ask the live run ``run_ref`` to pause at its next safe point, and wait (up to
    :data:`SETTLE_S`) until it has.

    Raises:
        RunNotFound: no such run.
        UserError: no process executes the run (it is paused, waiting, ended, or
            was orphaned by a crash: nothing to interrupt).
    """
    clock = clock or SystemClock()
    async with await _open(workspace, environ, clock) as journal:
        run_id, row = await _find(journal, run_ref)
        if not await _is_live(journal, run_id):
            raise UserError(
                f"run {run_id} is {row.status} and no process is executing it: nothing to interrupt"
            )
        await journal.append([new_event(clock, run_id, "user", RunInterrupt(reason=reason))])
        status = await _settle(journal, run_id, frozenset({"paused", *TERMINAL}), clock)
        return Steered(run_id, True, status)


async def cancel_run(
    workspace: Path,
    run_ref: str,
    environ: Mapping[str, str],
    *,
    reason: str | None = None,
    clock: Clock | None = None,
) -> Steered:
    """Cancel run ``run_ref``: it finishes as ``cancelled``.

    A live run kills what it has in flight, records it, and finishes; this waits
    for that (up to :data:`SETTLE_S`). A run no process executes is finished here,
    under its lease; if a crash cut a call off, a kernel first settles it (a
    command becomes ``job.ambiguous`` with a patch for what it changed), running
    nothing again. A scheme run's agent runs that have not ended are cancelled
    with it.

    Raises:
        RunNotFound: no such run.
        UserError: the run has ended already.
        RunLeased: a process took the run over while this one tried to cancel it.
    """
    clock = clock or SystemClock()
    async with await _open(workspace, environ, clock) as journal:
        run_id, row = await _find(journal, run_ref)
        if row.status in TERMINAL:
            raise UserError(f"run {run_id} already {row.status}; nothing to cancel")
        cancel = new_event(clock, run_id, "user", RunCancel(reason=reason))
        if await _is_live(journal, run_id):
            await journal.append([cancel])
            status = await _settle(journal, run_id, TERMINAL, clock)
            if status in TERMINAL or await _is_live(journal, run_id):
                return Steered(run_id, True, status)
        owner = new_owner(clock.new_id())
        try:
            await journal.acquire_lease(run_id, owner, 30.0)
        except RunLeased:  # it went live: the kernel takes the cancel
            await journal.append([cancel])
            return Steered(run_id, True, await _settle(journal, run_id, TERMINAL, clock))
        try:
            state, _ = await load_state(journal, run_id)
            if state.at_rest() and not await _agent_runs_going(journal, state):
                # Nothing cut off, no agent run of its steps to cancel too: finish it here.
                datas: list[AnyEventData] = [
                    RunStatusChanged.between(state.status, "cancelled", reason),
                    RunFinished(status="cancelled", error=cancel_error(reason)),
                ]
                events = [cancel, *(new_event(clock, run_id, "kernel", d) for d in datas)]
                fold(events, state)  # an illegal move raises before anything is written
                await journal.append(events, lease_owner=owner)
                return Steered(run_id, False, "cancelled")
            await journal.append([cancel], lease_owner=owner)
        finally:
            await journal.release_lease(run_id, owner)
    # A crash cut something off: a kernel settles it (job.ambiguous, patches), then ends
    # (a scheme run's kernel cancels its steps' agent runs too).
    outcome = await resume_run(run_id, workspace=Path(workspace), environ=environ, clock=clock)
    return Steered(run_id, False, outcome.status)


async def _agent_runs_going(journal: Journal, state: RunState) -> bool:
    """Whether a scheme run has an agent run (a step's, the fallback's) not ended."""
    for child in await agent_runs_of(journal, state):
        if (await journal.get_run(child)).status not in TERMINAL:
            return True
    return False
