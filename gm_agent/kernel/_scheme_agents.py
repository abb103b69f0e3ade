"""Agent steps and the fallback: a free agent run as a child of the scheme run.

The child is an ordinary run (``run.created`` with ``parent_run``, then the task as
``user.message``), driven in this process by a :class:`~gm_agent.kernel.loop.Kernel`
over its own journal connection, so it is listed and logged like any run; the
scheme run drives it (``gm resume --all`` and ``gm serve`` leave it to its
parent). Its job in the scheme run (kind ``agent``) names the child's id in its
arguments and is idempotent: a scheme resumed after a crash resumes the child
(or reads its end, if it ended) instead of starting another.

A child that stopped without ending (waiting for an approval, paused by its own
``gm interrupt``) fails the step; the step's next attempt goes on with the same
child, or serves its outcome once it succeeded. A ``gm interrupt`` or ``gm
cancel`` of the scheme run is passed on to the child: it pauses (the step is cut
off, not failed, and ``gm resume`` goes on with it) or ends cancelled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import anyio
from pydantic import JsonValue

from gm_agent.events import (
    Event,
    JobCancelled,
    RunCancel,
    RunInterrupt,
    new_event,
)
from gm_agent.jobs import JobOutcome, JobSpec, RetryPolicy
from gm_agent.journal import Journal
from gm_agent.kernel._agents import child_kernel, child_run_events
from gm_agent.kernel._controls import CONTROL_POLL_S
from gm_agent.kernel._core import spec_of
from gm_agent.kernel._scheme_jobs import SchemeJobs
from gm_agent.kernel._scheme_record import SchemeRecord, StepRecord, agent_runs_of, step_key
from gm_agent.kernel._scheme_text import handover
from gm_agent.kernel.loop import RunOutcome
from gm_agent.kernel.state import TERMINAL, JobView

__all__ = ["FALLBACK_STEP", "AgentTask", "SchemeAgents"]

FALLBACK_STEP = "(fallback)"
"""The step name of the fallback agent's job (not a valid step name, so never a step's)."""

AgentTask = tuple[str, tuple[str, ...] | None, int | None, str | None]
"""``(task text, tools or None for all, max_steps or None, model or None)``."""

STOPS = ("run.interrupt", "run.cancel")
"""The scheme run's control events that stop a running child too."""


class _ChildStopped(Exception):
    """The child paused or was cancelled because the scheme run was: the step was
    cut off, not failed (its job is recorded ``job.cancelled`` with this message)."""


class SchemeAgents(SchemeJobs):
    """The scheme kernel's part that runs agent steps and the fallback as child runs."""

    _emit_turn: anyio.Lock
    """One transaction at a time on this kernel's journal connection."""

    async def agent_spec(
        self, path: str, attempt: int, key: str, task: AgentTask, earlier: JobView | None
    ) -> JobSpec:
        """The job of an agent step's ``attempt``: a new child run, or the one the
        ``earlier`` attempt left, when it has not ended (it goes on) or succeeded
        since (its outcome is served)."""
        text, tools, max_steps, model = task
        child = await self._earlier_child(earlier) or self._clock.new_id()
        args: dict[str, JsonValue] = {
            "step": path,
            "attempt": attempt,
            "child_run": child,
            "task": text,
            "tools": list(tools) if tools is not None else None,
            "max_steps": max_steps or self._state.max_steps,
            "model": model or self._state.model,
        }
        return JobSpec(
            job_id=self._clock.new_id(), key=key, kind="agent", args=args, idempotent=True
        )

    async def _earlier_child(self, earlier: JobView | None) -> str | None:
        """The child run of ``earlier``, if a new attempt should go on with it."""
        before = earlier.args.get("child_run") if earlier is not None else None
        if not isinstance(before, str) or not await self._journal.has_run(before):
            return None
        status = (await self._journal.get_run(before)).status
        return before if status not in TERMINAL or status == "succeeded" else None

    async def run_agent(self, spec: JobSpec, *, recorded: bool = False) -> None:
        """Run an agent step's job to its ``job.result`` (``recorded``: its intent is
        journaled already; the child is resumed, or its end read), or to
        ``job.cancelled`` when the scheme run's interrupt or cancel stopped the child."""
        runner = self.step_runner(RetryPolicy(max_attempts=1))
        try:
            await runner.run(spec, self._child_effect(spec), intent_committed=recorded)
        except _ChildStopped as stopped:
            cut = JobCancelled(
                job_id=spec.job_id, key=spec.key, job_kind=spec.kind, reason=str(stopped)
            )
            await self._emit([cut])

    def _child_effect(self, spec: JobSpec) -> Callable[[], Awaitable[JobOutcome]]:
        """The effect of agent job ``spec``: create its child run unless it exists,
        then read its end if it ended, else drive it (see :meth:`_drive_child`).

        Raises:
            _ChildStopped: the scheme run's interrupt or cancel stopped the child.
        """
        child = str(spec.args["child_run"])

        async def effect() -> JobOutcome:
            async with await Journal.open(
                self._journal.path, durability=self._settings.journal.durability, clock=self._clock
            ) as journal:
                if not await journal.has_run(child):
                    await journal.append(child_run_events(self._clock, self._state, spec))
                row = await journal.get_run(child)
                if row.status in TERMINAL:
                    return _outcome(RunOutcome(child, row.status, row.summary, row.error))
                return _outcome(await self._drive_child(journal, spec))

        return effect

    async def _drive_child(self, journal: Journal, spec: JobSpec) -> RunOutcome:
        """Drive agent job ``spec``'s child run until it ends or stops, passing the
        scheme run's interrupts and cancels on to it.

        When this is cancelled (Ctrl-C, or ``gm cancel`` of the scheme run) the
        child is paused by its kernel; after a cancel it is then ended as
        ``cancelled`` too.

        Raises:
            _ChildStopped: the child paused or ended cancelled because the scheme
                run was interrupted or cancelled.
        """
        child, model = str(spec.args["child_run"]), str(spec.args["model"])
        after = self._seen_seq  # later stops are the scheme kernel's to take in
        ended: RunOutcome | None = None
        error: Exception | None = None
        try:
            async with anyio.create_task_group() as group:
                if self._heartbeat_on:
                    group.start_soon(self._pass_stops_on, journal, child, after)
                try:
                    ended = await child_kernel(self, journal, model, self._observer).execute(child)
                except Exception as exc:  # re-raised below, outside the task group
                    error = exc
                finally:
                    group.cancel_scope.cancel()
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._cancel_child(journal, child, after)
            raise
        if error is not None:
            raise error
        assert ended is not None
        if ended.status in ("paused", "cancelled") and await _stops_since(
            journal, self._state.run_id, after
        ):
            how = "paused; `gm resume` goes on with it" if ended.status == "paused" else "cancelled"
            raise _ChildStopped(f"the scheme run was stopped, and its agent run {child} {how}")
        return ended

    async def _pass_stops_on(self, journal: Journal, child: str, after: int) -> None:
        """Append each ``run.interrupt`` of the scheme run after seq ``after`` to run
        ``child`` too, while it runs (a cancel stops the child's kernel at once: see
        :meth:`_cancel_child`)."""
        while True:
            await self._clock.sleep(CONTROL_POLL_S)
            for event in await _stops_since(journal, self._state.run_id, after):
                after = max(after, event.seq or 0)
                if isinstance(event.data, RunInterrupt):
                    await self._append_to(child, event.data)

    async def _append_to(self, child: str, data: RunInterrupt) -> None:
        """Append ``data`` to run ``child`` over this kernel's connection, between
        its own commits (the child's connection is its kernel's to write on)."""
        async with self._emit_turn:
            with anyio.CancelScope(shield=True):  # a commit is never cut in two
                await self._journal.append([new_event(self._clock, child, "user", data)])

    async def _cancel_child(self, journal: Journal, child: str, after: int) -> None:
        """After the child's kernel was stopped: if the scheme run was cancelled,
        end the child as ``cancelled`` too; else (Ctrl-C) it stays paused, for the
        scheme run's resume."""
        stops = await _stops_since(journal, self._state.run_id, after)
        cancels = [e.data for e in stops if isinstance(e.data, RunCancel)]
        if cancels:
            await self._end_child(journal, child, cancels[0])

    async def cancel_agent_runs(self, cancel: RunCancel) -> None:
        """End every agent run of this scheme run that has not ended yet (one an
        interrupt or a crash left paused) as ``cancelled`` too."""
        async with await Journal.open(
            self._journal.path, durability=self._settings.journal.durability, clock=self._clock
        ) as journal:
            for child in await agent_runs_of(journal, self._state):
                await self._end_child(journal, child, cancel)

    async def _end_child(self, journal: Journal, child: str, cancel: RunCancel) -> None:
        """Cancel run ``child`` unless it ended: ``cancel`` appended to it, then its
        kernel settles what a stop cut off (running nothing again) and ends it."""
        row = await journal.get_run(child)
        if row.status in TERMINAL:
            return
        await journal.append([new_event(self._clock, child, "user", cancel)])
        await child_kernel(self, journal, row.model, self._observer).execute(child)

    async def fallback(
        self, record: SchemeRecord, path: str, steps: Mapping[str, StepRecord]
    ) -> None:
        """Hand the rest of the scheme to an agent run, and end as it ends; when
        the scheme run's interrupt or cancel stops it, leave the run ``running``
        for the caller to act on that.

        A recorded outcome of the fallback is served while its run's end still
        says the same (after a crash between the two); a fallback cut off, or
        whose run went on since it stopped, is run again with the same run.
        """
        found = (await self.records()).get(FALLBACK_STEP)
        if found is not None and found.job is not None and found.status == "started":
            spec = spec_of(found.job)
            await self._stoppable("tool", lambda: self.run_agent(spec, recorded=True))
        elif found is not None and found.job is not None and await self._stands(found):
            spec = spec_of(found.job)
        else:
            attempt = found.attempt + 1 if found is not None else 1
            key = step_key(self._state.run_id, FALLBACK_STEP, attempt)
            task = (handover(record, steps, path), None, None, None)
            earlier = found.job if found else None
            spec = await self.agent_spec(FALLBACK_STEP, attempt, key, task, earlier)
            await self._stoppable("tool", lambda: self.run_agent(spec))
        job = self.job(spec.job_id)
        if job is None or job.status in ("started", "cancelled"):
            return  # stopped by an interrupt or a cancel
        await self._end_as(await self.record_of(spec.job_id, 0), path)

    async def _stands(self, found: StepRecord) -> bool:
        """Whether the fallback's recorded outcome still holds: its run ended, and
        succeeded exactly when the record says so."""
        job = found.job
        child = job.args.get("child_run") if job is not None else None
        if found.status not in ("ok", "failed") or not isinstance(child, str):
            return False
        status = (await self._journal.get_run(child)).status
        return status in TERMINAL and (status == "succeeded") == (found.status == "ok")

    async def _end_as(self, done: StepRecord, path: str) -> None:
        """End (or stop) the scheme run as its fallback agent run ``done`` ended."""
        assert done.job is not None
        child = str(done.job.args["child_run"])
        if done.status == "ok":
            summary = (
                f"step {path!r} failed; the fallback agent run {child} finished: {done.view.output}"
            )
            return await self._finish("succeeded", summary=summary)
        error = done.job.result.error if done.job.result else None
        if (await self._journal.get_run(child)).status not in TERMINAL:
            return await self._set_status("waiting", f"step {path!r} failed; {error}")
        await self._finish("failed", error=f"step {path!r} failed, and the fallback: {error}")


async def _stops_since(journal: Journal, run_id: str, after: int) -> list[Event]:
    """Run ``run_id``'s ``run.interrupt`` and ``run.cancel`` events after seq ``after``."""
    events = await journal.read(run_id, after_seq=after, kinds=STOPS)
    return [e for e in events if isinstance(e.data, RunInterrupt | RunCancel)]


def _outcome(ended: RunOutcome) -> JobOutcome:
    """A child run's end as its step's outcome: its summary, or why it did not succeed."""
    if ended.status == "succeeded":
        return JobOutcome(ok=True, output=ended.summary or "")
    if ended.status in ("waiting", "paused"):
        why = f": {ended.needs}" if ended.needs else ""
        error = (
            f"agent run {ended.run_id} stopped {ended.status}{why}; answer it "
            f"(gm approve/send {ended.run_id}), then resume this run to go on with it"
        )
    else:
        error = f"agent run {ended.run_id} {ended.status}: {ended.error or 'no reason given'}"
    return JobOutcome(ok=False, output=ended.summary or "", error=error)
