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

import itertools
from collections.abc import Mapping
from pathlib import Path

import anyio

from gm_agent.clock import Clock, SystemClock
from gm_agent.errors import UserError
from gm_agent.events import RunForked, UserMessage, new_event
from gm_agent.journal import Journal
from gm_agent.kernel._approvals import ApprovalMode
from gm_agent.kernel._checkpoint import history, lineage, load_state
from gm_agent.kernel._restore import plan_restore
from gm_agent.kernel._run import (
    absolute_model,
    kernel_for,
    model_pool,
    open_existing,
    require_workspace,
)
from gm_agent.kernel._scheme_record import scheme_record_of
from gm_agent.kernel.loop import EventObserver, RunOutcome
from gm_agent.kernel.state import Folder, RunState
from gm_agent.policy import Redactor
from gm_agent.settings import load_settings

__all__ = ["fork_run"]


async def _fork_point(journal: Journal, parent_id: str, at_seq: int) -> RunState:
    """The parent's state after its event ``at_seq``, checked to be a fork point.

    Raises:
        UserError: ``at_seq`` is not one of the parent's own events, comes before
            the task was given, or is inside a tool call, a job or a patch (the
            message names the nearest earlier safe point).
    """
    events = await history(journal, parent_id, at_seq)
    own = [e for e in events if e.run_id == parent_id]
    if not own or own[-1].seq != at_seq:
        where = await _where_is(journal, parent_id, at_seq)
        raise UserError(f"seq {at_seq} is not an event of run {parent_id}{where}")
    folder = Folder()
    safe: int | None = None
    for event in events:
        folder.add(event)
        if event.run_id == parent_id and folder.at_rest() and event.seq != at_seq:
            safe = event.seq
    state = folder.state
    if not any(turn.role == "user" for turn in state.conversation):
        raise UserError(f"seq {at_seq} comes before run {parent_id} was given its task")
    if not folder.at_rest():
        hint = f"; the nearest earlier safe point is seq {safe}" if safe else ""
        raise UserError(
            f"seq {at_seq} of run {parent_id} is in the middle of a tool call, a job or a "
            f"patch; fork at a step boundary{hint} (see `gm replay {parent_id}`)"
        )
    return state


async def _where_is(journal: Journal, run_id: str, seq: int) -> str:
    """Why ``seq`` is not ``run_id``'s: where its events are, or whose history holds it."""
    chain = await lineage(journal, run_id)
    for (child, _), (parent, fork_seq) in itertools.pairwise(chain):
        if fork_seq is not None and seq <= fork_seq:
            return (
                f"; it is in the history run {child} inherits from run {parent}: "
                f"fork that one (`gm fork {parent} --at {seq}`)"
            )
    first = await journal.read(run_id, limit=1)
    last = (await journal.get_run(run_id)).last_seq
    if not first:
        return ""
    return f" (its events are seqs {first[0].seq} to {last}; see `gm log {run_id}`)"


async def _require_forkable(journal: Journal, parent_id: str, workspace: Path) -> None:
    """Refuse a parent being executed now, or one a crash cut off mid-change.

    Raises:
        UserError: as above, or the run belongs to another directory.
    """
    row = await journal.get_run(parent_id)
    if row.status in ("running", "waiting") and not row.orphaned:
        raise UserError(
            f"run {parent_id} is being executed right now; fork it once it stops "
            "(or interrupt it with Ctrl-C in its terminal)"
        )
    now, _ = await load_state(journal, parent_id)
    require_workspace(now, workspace, "fork")
    if now.open_jobs() or any(p.status == "intent" for p in now.patches):
        raise UserError(
            f"run {parent_id} stopped in the middle of a change; run `gm resume {parent_id}` "
            "first (it records what the interrupted step changed), then fork"
        )


async def _refuse_scheme_run(journal: Journal, run_id: str) -> None:
    """Refuse a scheme run (or a fork of one): a fork goes on with the model's
    conversation, and a scheme run has none; its steps are the procedure's.

    Raises:
        UserError: saying how to run the scheme again instead.
    """
    root = (await lineage(journal, run_id))[-1][0]
    record = await scheme_record_of(journal, root)
    if record is None:
        return
    raise UserError(
        f"run {run_id} is a run of the scheme {record.scheme.name!r}, and a fork would go on "
        "as a free model run without its steps; to change what it did, `gm undo "
        f"{run_id}` and run the scheme again (`gm scheme run {record.scheme.name} ...`); to "
        "go on from a step that stopped, `gm resume` it"
    )


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
    approvals: ApprovalMode = "stop",
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
        approvals: when a call needs approval; see ``run_task``.

    Raises:
        RunNotFound: no such run.
        UserError: ``at_seq`` is not a safe point of the parent, a file to restore
            was edited since (without ``force``), the parent is a scheme run, or it
            had started child runs by ``at_seq``; nothing is recorded then.
    """
    clock = clock or SystemClock()
    workspace = Path(await anyio.Path(workspace).resolve())
    settings = load_settings(workspace, environ)
    async with await open_existing(settings, clock) as journal:
        parent_id = await journal.resolve_run(run_ref)
        await _refuse_scheme_run(journal, parent_id)
        await _require_forkable(journal, parent_id, workspace)
        state = await _fork_point(journal, parent_id, at_seq)
        if state.spawned():  # its children's work is not part of the fork point's files
            first = min(
                e.seq or 0
                for e in await journal.read(parent_id, kinds=["job.intent"])
                if e.data.kind == "job.intent" and e.data.job_kind == "agent"
            )
            raise UserError(
                f"run {parent_id} had started child runs by seq {at_seq}, and a fork cannot "
                f"take their work along; fork at a seq before {first} (its first spawn_agent), "
                "or fork one of its child runs (`gm runs` lists them under it)"
            )
        plan = await plan_restore(journal, workspace, parent_id, at_seq)
        if plan.edited and not force:
            names = ", ".join(repr(p) for p in plan.edited)
            raise UserError(
                f"cannot restore the workspace to the fork point: {names} changed since run "
                f"{parent_id} changed it (by you, or by another run such as an earlier fork: "
                "`gm undo` it first); nothing was recorded. Use --force to overwrite"
            )
        model_name = absolute_model(model) if model else state.model
        pool = model_pool(settings, environ, Path.cwd())
        llm = pool.get(model_name)
        try:
            fork_id = clock.new_id()
            forked = RunForked(
                parent_id=parent_id,
                fork_seq=at_seq,
                task=state.task,
                model=model_name,
                max_steps=max_steps or state.max_steps,
                force_restore=force,
                steps=state.step,
                input_tokens=state.usage.input_tokens,
                output_tokens=state.usage.output_tokens,
                cost_usd=state.cost_usd,
            )
            events = [new_event(clock, fork_id, "user", forked)]
            if message:
                text = Redactor(environ).redact(message)
                events.append(new_event(clock, fork_id, "user", UserMessage(text=text)))
            await journal.append(events)
            kernel = kernel_for(
                journal, llm, settings, clock, environ, observer, approvals=approvals, models=pool
            )
            kernel.announce(await journal.read(fork_id))
            return await kernel.execute(fork_id)
        finally:
            await pool.aclose()
