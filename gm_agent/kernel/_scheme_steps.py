"""A scheme run's steps: level by level, each attempt a job, served when recorded.

The part of :class:`~gm_agent.kernel._scheme_kernel.SchemeKernel` that walks a
scheme (the run's own, or one a ``scheme`` step calls, inline): it serves what is
recorded, reconciles what a crash cut off, skips, and runs new attempts, and
says what stops the run (:class:`Stop`). Between the run's own levels it takes
in ``gm cancel`` and ``gm interrupt``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

import anyio

from gm_agent.errors import SchemeError
from gm_agent.events import (
    FileChange,
    JobAmbiguous,
    JobCancelled,
    JobIntent,
    RunCancel,
    SchemeStepSkipped,
)
from gm_agent.jobs import JobOutcome, JobSpec, RetryPolicy
from gm_agent.kernel._calls import patch_reply
from gm_agent.kernel._core import spec_of
from gm_agent.kernel._decide import INTERRUPTED, cancel_error
from gm_agent.kernel._scheme_agents import SchemeAgents
from gm_agent.kernel._scheme_jobs import StepRetry, step_body
from gm_agent.kernel._scheme_record import AMBIGUOUS_STEP, SchemeRecord, StepRecord, step_key
from gm_agent.kernel.state import JobView
from gm_agent.schemes import Scheme, Step, StepView, bind_params, condition, topological_order

__all__ = ["MAX_CONCURRENT_STEPS", "SchemeSteps", "Scope", "Stop"]

MAX_CONCURRENT_STEPS = 4
"""Steps of one level that run at once (shell steps take turns on the writer lock)."""


@dataclass(frozen=True)
class Stop:
    """Why the steps stopped before the end: step ``path`` ``blocked`` the run (it
    failed with ``on_error: blocked``, or its outcome is unknown: ``record``'s
    status is ``unknown``), failed with ``fallback``, a template ``error``
    (``message``), or ``stopped``: a cancel or an interrupt cut a step off."""

    kind: Literal["blocked", "fallback", "error", "stopped"]
    path: str = ""
    record: StepRecord | None = None
    message: str = ""


@dataclass
class Scope:
    """A scheme being run (the run's own, or one a ``scheme`` step calls, inline)
    with its parameters; ``prefix`` names its steps (``check.`` inside step
    ``check``), ``views`` holds what its steps' templates see of the steps so far."""

    record: SchemeRecord
    scheme: Scheme
    params: Mapping[str, object]
    prefix: str = ""
    views: dict[str, StepView] = field(default_factory=dict[str, StepView])


class SchemeSteps(SchemeAgents):
    """Runs a scheme's steps; see the module docstring."""

    _slots: anyio.CapacityLimiter
    """At most :data:`MAX_CONCURRENT_STEPS` steps of a level at once."""

    async def _controls(self) -> bool:
        """At a safe point: act on a cancel or an interrupt; whether the run stopped."""
        await self._catch_up()
        if self._state.cancel_requested:
            await self._cancel()
        elif self._state.interrupt_requested:
            await self._set_status("paused", INTERRUPTED)
        return self._state.status != "running"

    async def _cancel(self) -> None:
        """End the run ``cancelled``, at rest: first what a crash cut off is settled,
        running nothing again (a command's outcome is unknown, with a patch of what
        it changed), and its agent runs that have not ended are cancelled too."""
        for job in self._state.open_jobs():
            await self._outcome_unknown(job)
        reason = self._state.cancel_reason
        await self.cancel_agent_runs(RunCancel(reason=reason))
        await self._finish("cancelled", error=cancel_error(reason))

    # -- levels and steps --------------------------------------------------------

    async def _levels(self, scope: Scope) -> Stop | None:
        """Run ``scope``'s scheme level by level; the first stop, if any."""
        for level in topological_order(scope.scheme):
            if not scope.prefix and await self._controls():
                return Stop("stopped")
            stop = await self._level(scope, level)
            if stop is not None:
                return stop
        return None

    async def _level(self, scope: Scope, level: Sequence[str]) -> Stop | None:
        """Run the steps of one level concurrently; the first of them (in file
        order) that stops the run, once they all ended."""
        records = await self.records()
        stops: dict[str, Stop] = {}
        errors: list[Exception] = []

        async def one(name: str) -> None:
            try:
                stop = await self._step(scope, scope.scheme.step(name), records)
            except SchemeError as exc:  # a template that cannot be rendered
                stop = Stop("error", scope.prefix + name, message=str(exc))
            except Exception as exc:  # raised below, not as a group
                errors.append(exc)
                return
            if stop is not None:
                stops[name] = stop

        async def run_all() -> bool:
            async with anyio.create_task_group() as group:
                for name in level:
                    group.start_soon(one, name)
            return True

        # Only the run's own levels can be stopped: a sub-scheme's are inside one.
        ran = await (run_all() if scope.prefix else self._stoppable("tool", run_all))
        if errors:
            raise errors[0]
        if ran is None:
            return Stop("stopped")
        return next((stops[name] for name in level if name in stops), None)

    async def _step(
        self, scope: Scope, step: Step, records: Mapping[str, StepRecord]
    ) -> Stop | None:
        """Serve, reconcile, skip or run one step; what stops the run after it, if
        anything (its failure, by its ``on_error``; or a stop that cut it off)."""
        path = scope.prefix + step.name
        found = records.get(path)
        done: StepRecord | Stop
        if found is not None and found.status == "started":
            done = await self._reconcile(scope, step, found)
        elif found is None or _runs_again(step, found):
            reason = self._skip_reason(scope, step)
            if reason is not None:
                await self._emit([SchemeStepSkipped(step=path, reason=reason)])
                scope.views[step.name] = StepView(skipped=True)
                return None
            done = await self._attempt(scope, step, path, found)
        else:
            done = found  # recorded: served, never run again
        if isinstance(done, Stop):
            return done
        scope.views[step.name] = done.view
        return _stop_of(step, path, done)

    def _skip_reason(self, scope: Scope, step: Step) -> str | None:
        """Why ``step`` does not run: without a ``when``, a dependency did not
        succeed; with one, it rendered false. ``None``: it runs."""
        views = scope.views
        if step.when is None:
            bad = [name for name in step.depends_on if not views[name].ok]
            if not bad:
                return None
            how = "was skipped" if views[bad[0]].skipped else "failed"
            return f"{bad[0]!r} {how}, and the step has no `when` saying to run anyway"
        if condition(step.when, scope.params, views, step=step, path=scope.scheme.path):
            return None
        return f"when is false: {step.when.strip()}"

    async def _attempt(
        self, scope: Scope, step: Step, path: str, earlier: StepRecord | None
    ) -> StepRecord | Stop:
        """A new attempt of ``step`` (the first, or one after the run stopped on it)."""
        attempt = earlier.attempt + 1 if earlier is not None else 1
        key = step_key(self._state.run_id, path, attempt)
        params, views = scope.params, scope.views
        if step.scheme is not None:  # not in a slot: its own steps take them
            return await self._subscheme(
                scope, step, self.job_spec(step, path, attempt, key, params, views)
            )
        async with self._slots:
            if step.agent is not None:
                _, body = step_body(step, params, views)
                task = (
                    str(body["task"]),
                    step.allowed_tools,
                    step.agent.max_steps,
                    step.agent.model,
                )
                spec = await self.agent_spec(
                    path, attempt, key, task, earlier.job if earlier else None
                )
                await self.run_agent(spec)
            else:
                spec = self.job_spec(step, path, attempt, key, params, views)
                await self.run_job(spec, StepRetry.of(step.retry))
        return await self.record_of(spec.job_id, attempt)

    async def _reconcile(self, scope: Scope, step: Step, found: StepRecord) -> StepRecord | Stop:
        """A step the run stopped in (an intent, no outcome). A called scheme goes on
        (its recorded steps served); an agent run is resumed; a file write that a
        patch recorded is served from the patch; an idempotent step is run again
        under the same key (a command after a patch of what it changed so far);
        any other step's outcome is unknown (``job.ambiguous``)."""
        job = found.job
        assert job is not None
        spec: JobSpec = spec_of(job)
        patch = self._state.patch_for_call(job.job_id)
        if job.job_kind == "scheme":
            return await self._subscheme(scope, step, spec, recorded=True)
        if job.job_kind == "agent":
            await self.run_agent(spec, recorded=True)
        elif job.job_kind == "tool" and patch is not None and patch.status != "intent":
            ok = patch.status == "applied"
            reply = patch_reply(patch)
            await self.conclude(spec, JobOutcome(ok=ok, output=reply, error=None if ok else reply))
        elif job.idempotent:
            if job.job_kind == "shell":  # what the cut-off command changed is a patch first
                covered = await self._patched_since(job)
                async with self._shell_turn:
                    await self._writer().record_cut_off(job, None, covered)
            await self.run_job(spec, StepRetry.of(step.retry), recorded=True)
        else:
            await self._outcome_unknown(job)
        return await self.record_of(job.job_id, found.attempt)

    async def _outcome_unknown(self, job: JobView) -> None:
        """Record that cut-off ``job``'s outcome is unknown (``job.ambiguous``), a
        command's with a patch of what changed since it started."""
        if job.job_kind == "shell":
            covered = await self._patched_since(job)
            async with self._shell_turn:
                await self._writer().recover_ambiguous(job, AMBIGUOUS_STEP, None, covered)
            return
        ambiguous = JobAmbiguous(
            job_id=job.job_id, key=job.key, job_kind=job.job_kind, message=AMBIGUOUS_STEP
        )
        await self._emit([ambiguous])

    async def _patched_since(self, job: JobView) -> list[FileChange]:
        """The file changes of the patches applied since ``job``'s intent (what a
        recovery of it must not record again)."""
        intents = await self._journal.read(self._state.run_id, kinds=["job.intent"])
        seq = next(
            (
                e.seq or 0
                for e in intents
                if isinstance(e.data, JobIntent) and e.data.job_id == job.job_id
            ),
            0,
        )
        applied = [p for p in self._state.patches if p.status == "applied" and p.applied_seq > seq]
        return [change for patch in applied for change in patch.files]

    async def _subscheme(
        self, scope: Scope, step: Step, spec: JobSpec, *, recorded: bool = False
    ) -> StepRecord | Stop:
        """A ``scheme`` step: one job (kind ``scheme``) around the called scheme's
        steps, run inline and named ``STEP.CHILD``. It fails when they stop on a
        failure; its output is its last step's. When one of them was cut off by a
        stop (its outcome unknown, or interrupted), the job is too, and that stop
        is the run's."""
        assert step.scheme is not None
        path = str(spec.args["step"])
        called = scope.record.subscheme(step.scheme.name)
        given = cast(dict[str, object], spec.args.get("params") or {})
        inner = Scope(scope.record, called, bind_params(called, given), f"{path}.")

        async def effect() -> JobOutcome:
            stop = await self._levels(inner)
            if stop is not None and (stop.kind == "stopped" or _unknown(stop)):
                raise _CutOff(stop)
            if stop is None:
                done = await self.records()
                ran = [f"{path}.{s.name}" for s in called.steps if f"{path}.{s.name}" in done]
                return JobOutcome(ok=True, output=done[ran[-1]].view.output if ran else "")
            why = stop.message or (stop.record.view.output if stop.record else "")
            error = f"step {stop.path!r} failed"
            return JobOutcome(ok=False, output=f"{error}: {why}", error=error)

        runner = self.step_runner(RetryPolicy(max_attempts=1))
        try:
            await runner.run(spec, effect, intent_committed=recorded)
        except _CutOff as cut:
            inner_stop = cut.stop
            why = f"its step {inner_stop.path!r} was cut off by a stop"
            job_id, key, kind = spec.job_id, spec.key, spec.kind
            if inner_stop.kind == "stopped":
                await self._emit([JobCancelled(job_id=job_id, key=key, job_kind=kind, reason=why)])
            else:
                message = f"outcome unknown: {why}"
                await self._emit(
                    [JobAmbiguous(job_id=job_id, key=key, job_kind=kind, message=message)]
                )
            return inner_stop
        return await self.record_of(spec.job_id, int(str(spec.args["attempt"])))


class _CutOff(Exception):
    """A called scheme's step was cut off by a stop: so is the ``scheme`` step."""

    def __init__(self, stop: Stop) -> None:
        super().__init__(stop.path)
        self.stop = stop


def _unknown(stop: Stop) -> bool:
    """A stop at a step whose outcome is unknown (it blocks, whatever its on_error)."""
    return stop.record is not None and stop.record.status == "unknown"


def _runs_again(step: Step, found: StepRecord) -> bool:
    """Whether a recorded step gets a new attempt: it was cut off by a stop (its
    outcome unknown), or it failed and blocked the run, which was resumed."""
    return found.status == "unknown" or (found.view.failed and step.on_error == "blocked")


def _stop_of(step: Step, path: str, done: StepRecord) -> Stop | None:
    """What step ``path``'s outcome ``done`` stops: a cut-off step stops the run
    (interrupted: it pauses or ends as asked; outcome unknown: it waits for a
    person), whatever its ``on_error``, since it did not fail; a failure does what
    its ``on_error`` says."""
    if done.status == "unknown":
        assert done.job is not None
        return Stop("stopped") if done.job.status == "cancelled" else Stop("blocked", path, done)
    if not done.view.failed or step.on_error == "continue":
        return None
    return Stop("fallback" if step.on_error == "fallback" else "blocked", path, done)
