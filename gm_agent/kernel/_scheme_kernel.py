"""Executing a scheme as a run: its steps level by level, each attempt a job.

::

    take the run's lease; state = checkpoint + fold(tail); the scheme from run.created
    finish the patches a crash cut off (patch.intent without patch.applied)
    for each level of the DAG (steps whose dependencies are all in earlier levels):
        take in cancels and interrupts (a safe point: nothing in flight)
        run the level's steps concurrently (at most MAX_CONCURRENT_STEPS; shell
        steps one at a time, under the writer lock), each one:
            recorded ok / skipped / failed with on_error continue -> served, never re-run
            intent without a result (the run stopped while it ran) -> idempotent:
                run again under the same key; otherwise job.ambiguous, "outcome unknown"
            cut off by a stop (job.cancelled, job.ambiguous) -> a new attempt
            else: skipped (scheme.step_skipped) or a new attempt (a job)
        cut off by a stop: interrupted -> paused / cancelled; outcome unknown -> waits
        a failure: continue -> go on; blocked -> the run waits, naming the step;
        fallback -> the rest is handed to an agent run
    succeeded when every level is done

``gm resume`` on a run blocked at a step runs that step again (a new attempt,
with a new idempotency key); everything recorded before is served. A step cut
off by a stop never counts as failed, whatever its ``on_error``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import anyio

from gm_agent.clock import Clock
from gm_agent.errors import UserError
from gm_agent.events import (
    AnyEventData,
    Event,
    EventSource,
)
from gm_agent.journal import CheckpointRecord, Journal
from gm_agent.kernel._approvals import ApprovalMode
from gm_agent.kernel._core import EventObserver
from gm_agent.kernel._decide import INTERRUPTED
from gm_agent.kernel._scheme_record import (
    SchemeRecord,
    scheme_record_of,
)
from gm_agent.kernel._scheme_steps import MAX_CONCURRENT_STEPS, SchemeSteps, Scope
from gm_agent.kernel._scheme_text import blocked_reason, scheme_summary
from gm_agent.kernel.loop import Kernel, RunOutcome
from gm_agent.llm import ModelPool, ScriptedModel, make_model
from gm_agent.settings import Settings
from gm_agent.tools import builtin_tools

__all__ = ["MAX_CONCURRENT_STEPS", "SchemeKernel", "execute_scheme"]


class SchemeKernel(SchemeSteps, Kernel):
    """Executes scheme runs: the lease, heartbeat, control watch, checkpoints, the
    sandbox and the workspace writer are the :class:`Kernel`'s; the loop is the
    scheme's levels instead of the model's moves."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shell_turn = anyio.Lock()
        self._emit_turn = anyio.Lock()  # one journal transaction at a time on the connection
        self._slots = anyio.CapacityLimiter(MAX_CONCURRENT_STEPS)

    async def _emit(
        self,
        datas: Sequence[AnyEventData],
        cause: str | None = None,
        blobs: Iterable[bytes] = (),
        source: EventSource | None = None,
        checkpoint: CheckpointRecord | None = None,
        fenced: bool = False,
    ) -> list[Event]:
        async with self._emit_turn:  # steps of a level commit concurrently
            return await super()._emit(datas, cause, blobs, source, checkpoint, fenced)

    async def _drive(self, run_id: str) -> RunOutcome:
        """Load scheme run ``run_id``, take it over, finish the patches a crash cut
        off, then run its steps until it ends or stops (checkpointed on the way out).

        Raises:
            UserError: it already ended, or is not a scheme run.
        """
        await self._load(run_id)
        record = await scheme_record_of(self._journal, run_id)
        if record is None:
            raise UserError(f"run {run_id} is not a scheme run; resume it with `gm resume`")
        self._tools = {tool.name: tool for tool in self._registry.select(None)}
        try:
            await self._take_over()
            if self._state.status == "running":
                await self._probe_sandbox()
            if self._state.status == "running":
                await self._complete_patches()
                await self._perform(record)
            await self._checkpoint()
        except anyio.get_cancelled_exc_class():
            await self._stop(INTERRUPTED)
            raise
        except Exception as exc:
            await self._stop(f"stopped by an error in gm: {exc}")
            raise
        state = self._state
        return RunOutcome(run_id, state.status, state.summary, state.error, state.waiting_reason)

    async def _complete_patches(self) -> None:
        """Finish each patch a crash cut off between ``patch.intent`` and
        ``patch.applied`` (a ``tool`` step's file write), as the loop does for a
        tool call's: the step is then served from it (see :meth:`_reconcile`)."""
        for patch in [p for p in self._state.patches if p.status == "intent"]:
            await self._writer().complete(patch.patch_id, patch.files, patch.call_id, None)

    async def _perform(self, record: SchemeRecord) -> None:
        """Run the scheme's steps and end (or stop) the run accordingly."""
        stop = await self._levels(Scope(record, record.scheme, record.params))
        if self._state.status != "running":
            return  # cancelled or paused between levels
        steps = {k: v for k, v in (await self.records()).items() if "." not in k}
        if stop is None:
            await self._finish("succeeded", summary=scheme_summary(record, steps))
        elif stop.kind == "blocked":
            assert stop.record is not None
            await self._set_status(
                "waiting", blocked_reason(self._state.run_id, stop.path, stop.record)
            )
        elif stop.kind == "fallback":
            await self.fallback(record, stop.path, steps)
        elif stop.kind == "error":
            await self._finish("failed", error=stop.message)
        if self._state.status == "running":  # stopped by an interrupt or a cancel
            await self._controls()


async def execute_scheme(
    journal: Journal,
    run_id: str,
    settings: Settings,
    clock: Clock,
    environ: Mapping[str, str],
    observer: EventObserver | None = None,
    *,
    heartbeat: bool = True,
    approvals: ApprovalMode = "stop",
) -> RunOutcome:
    """Drive scheme run ``run_id`` until it ends or stops (fresh or resumed).

    Args:
        journal: the workspace's journal, holding the run.
        run_id: the scheme run (its ``run.created`` holds the scheme).
        settings: the workspace's settings (tool limits, sandbox, journal).
        clock: time and ids.
        environ: the environment, for API keys and the steps' commands (secrets
            are removed before a command sees it).
        observer: called with each event as it is committed (also its agent runs').
        heartbeat: renew the lease and watch for control events in the
            background (off only with a fake clock).
        approvals: what an agent step's call that needs approval does; see
            :data:`~gm_agent.kernel.ApprovalMode`.

    Returns:
        How the run stopped.

    Raises:
        RunLeased: another live process executes it.
        UserError: it already ended, or is not a scheme run.
    """
    pool = ModelPool(lambda name: make_model(name, settings, environ, base_dir=settings.workspace))
    try:
        kernel = SchemeKernel(
            journal,
            ScriptedModel("none", []),  # steps ask the pool for the run's model when they need one
            builtin_tools(),
            settings,
            clock=clock,
            environ=environ,
            observer=observer,
            heartbeat=heartbeat,
            approvals=approvals,
            models=pool,
        )
        return await kernel.execute(run_id)
    finally:
        await pool.aclose()
