"""``gm fork``: a new run that shares a run's history up to a seq, then goes its own way.

The fork's first event, ``run.forked``, names the parent and the fork point;
the parent's events are referenced, never copied (see
:func:`~gm_agent.kernel._checkpoint.history`). Before the fork takes its first
step, its kernel restores the workspace files to their state at the fork point,
as one patch of the fork (so ``gm undo FORK`` brings back the parent's result):
the parent's patches applied after the fork point are reverted, and those
before it that an undo reverted are applied again. A file edited since the
parent changed it is refused, naming it, unless ``--force``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio
import anyio.to_thread

from gm_agent.clock import Clock, SystemClock
from gm_agent.errors import UserError
from gm_agent.events import RunForked, UserMessage, new_event
from gm_agent.journal import Journal
from gm_agent.kernel._checkpoint import history, load_state
from gm_agent.kernel._restore import plan_restore
from gm_agent.kernel._run import kernel_for, open_existing
from gm_agent.kernel.loop import EventObserver, RunOutcome
from gm_agent.kernel.state import RunState, evolve
from gm_agent.llm import make_model
from gm_agent.patches import PlannedChange, check_changes
from gm_agent.settings import load_settings

__all__ = ["fork_run"]


def _at_rest(state: RunState) -> bool:
    return not (
        state.open_calls or state.open_jobs() or any(p.status == "intent" for p in state.patches)
    )


async def _fork_point(journal: Journal, parent_id: str, at_seq: int) -> int:
    """The parent's last event at or before ``at_seq``, checked to be a safe point.

    Raises:
        UserError: ``at_seq`` is before the parent's own events, or inside a tool call.
    """
    events = await history(journal, parent_id, at_seq)
    own = [e for e in events if e.run_id == parent_id]
    if not own:
        raise UserError(
            f"seq {at_seq} is before run {parent_id}'s own events; see `gm log {parent_id}`"
        )
    state = RunState()
    safe: int | None = None
    for event in events:
        state = evolve(state, event)
        if event.run_id == parent_id and _at_rest(state):
            safe = event.seq
    point = own[-1].seq or 0
    if safe != point:
        hint = f"; the nearest earlier safe point is seq {safe}" if safe else ""
        raise UserError(
            f"seq {point} of run {parent_id} is in the middle of a tool call, a job or a "
            f"patch; fork at a step boundary{hint} (see `gm replay {parent_id}`)"
        )
    return point


async def fork_run(
    workspace: Path,
    run_ref: str,
    environ: Mapping[str, str],
    *,
    at_seq: int,
    model: str | None = None,
    message: str | None = None,
    max_steps: int | None = None,
    force: bool = False,
    clock: Clock | None = None,
    observer: EventObserver | None = None,
) -> RunOutcome:
    """Fork run ``run_ref`` at ``at_seq`` and drive the fork to its end.

    Args:
        workspace: the project directory.
        run_ref: the parent run (id, prefix or ``last``).
        at_seq: the fork point: the parent's history up to this seq is the fork's.
            It must be a safe point (between steps or tool calls).
        model: the fork's model (default: the parent's).
        message: a user message added after the fork point.
        max_steps: the fork's step budget, counting the parent's steps before the
            fork point (default: the parent's).
        force: restore files even where they were edited since the parent changed them.

    Raises:
        RunNotFound: no such run.
        UserError: ``at_seq`` is not a safe point of the parent, or a file to restore
            was edited since (without ``force``); nothing is recorded then.
    """
    clock = clock or SystemClock()
    workspace = Path(await anyio.Path(workspace).resolve())
    settings = load_settings(workspace, environ)
    async with await open_existing(settings, clock) as journal:
        parent_id = await journal.resolve_run(run_ref)
        fork_seq = await _fork_point(journal, parent_id, at_seq)
        state, _ = await load_state(journal, parent_id, fork_seq)
        restore = await plan_restore(journal, parent_id, fork_seq)
        if not force:
            await _refuse_edited(workspace, restore)
        model_name = model or state.model
        llm = make_model(model_name, settings, environ, base_dir=Path.cwd())
        try:
            fork_id = clock.new_id()
            forked = RunForked(
                parent_id=parent_id,
                fork_seq=fork_seq,
                task=state.task,
                model=model_name,
                max_steps=max_steps or state.max_steps,
                force_restore=force,
            )
            events = [new_event(clock, fork_id, "user", forked)]
            if message:
                events.append(new_event(clock, fork_id, "user", UserMessage(text=message)))
            await journal.append(events)
            kernel = kernel_for(journal, llm, settings, clock, environ, observer)
            kernel.announce(await journal.read(fork_id))
            return await kernel.execute(fork_id)
        finally:
            await llm.aclose()


async def _refuse_edited(workspace: Path, restore: Sequence[PlannedChange]) -> None:
    mismatched = await anyio.to_thread.run_sync(check_changes, workspace, restore)
    if mismatched:
        names = ", ".join(repr(m.path) for m in mismatched)
        raise UserError(
            f"cannot restore the workspace to the fork point: {names} changed since the run "
            "changed it (your edits?); nothing was recorded. Use --force to overwrite them"
        )
