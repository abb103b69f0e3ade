"""Starting runs for triggers: one firing, one ``trigger.fired``, one run.

A firing is journaled in the trigger's stream in the same commit as the run it
starts, so the journal never holds one without the other. Firings with a stable
id (a webhook's delivery, a schedule's time) must be new: a redelivery is
answered ``duplicate`` with the run it started the first time. A trigger at its
``max_concurrent`` runs records the firing as skipped (``busy``); runs over all
triggers are limited by ``[serve] max_runs`` (the rest queue).

The task's text may use the firing's data, rendered by Jinja2 in its sandbox:
``{{ payload.pull_request.title }}``, ``{{ event }}``, ``{{ paths }}``,
``{{ scheduled_at }}``, ``{{ trigger }}``. A missing key, at any depth, renders
as nothing (Jinja2's ``ChainableUndefined``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import anyio
from anyio.abc import TaskGroup
from pydantic import JsonValue

from gm_agent.clock import Clock
from gm_agent.errors import DuplicateEvent, GmAgentError, TaskFileError
from gm_agent.events import Event, EventSource, TriggerFired, TriggerKind, new_event
from gm_agent.journal import Journal
from gm_agent.kernel import (
    create_scheme_run,
    execute_scheme,
    kernel_for,
    load_task,
    model_pool,
    plan_run,
    plan_scheme,
    scheme_model,
    scheme_record_of,
)
from gm_agent.policy import Redactor
from gm_agent.settings import Settings, Trigger
from gm_agent.triggers.schedule import stream_of

__all__ = ["Firing", "Launcher", "render_task"]

log = logging.getLogger("gm_agent.triggers")

Accepted = Literal["started", "duplicate", "busy", "skipped", "ignored"]

_SOURCES: dict[TriggerKind, EventSource] = {
    "webhook": "webhook",
    "files": "file",
    "schedule": "timer",
}


@dataclass(frozen=True)
class Firing:
    """One firing of a trigger: what it carries, and its stable id if it has one."""

    trigger: Trigger
    event_id: str | None = None
    payload: JsonValue = None
    delivery_id: str | None = None
    event: str | None = None
    paths: tuple[str, ...] = ()
    scheduled_at: str | None = None
    next_at: str | None = None
    schedule: str | None = None

    def fired(self, started_run: str | None, skipped: str | None = None) -> TriggerFired:
        """Its ``trigger.fired`` payload."""
        return TriggerFired(
            trigger=self.trigger.name,
            on=self.trigger.on,
            started_run=started_run,
            skipped=skipped,
            delivery_id=self.delivery_id,
            event=self.event,
            paths=self.paths,
            scheduled_at=self.scheduled_at,
            next_at=self.next_at,
            schedule=self.schedule,
            payload=self.payload,
        )


def render_task(text: str, firing: Firing) -> str:
    """``text`` with ``{{ ... }}`` filled from ``firing`` (Jinja2's sandbox).

    Raises:
        TaskFileError: the text is not a valid template.
    """
    if "{{" not in text and "{%" not in text:
        return text
    from jinja2 import ChainableUndefined, TemplateError
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(
        autoescape=False, keep_trailing_newline=True, undefined=ChainableUndefined
    )
    try:
        return env.from_string(text).render(
            payload=firing.payload,
            event=firing.event,
            paths=list(firing.paths),
            scheduled_at=firing.scheduled_at,
            trigger=firing.trigger.name,
            delivery_id=firing.delivery_id,
        )
    except TemplateError as exc:
        raise TaskFileError(
            firing.trigger.task, f"the task is not a valid template: {exc}"
        ) from exc


@dataclass
class Launcher:
    """Starts and executes the runs of triggers, in ``group``.

    Args:
        settings: the workspace's settings (``[serve] max_runs``).
        environ: environment for settings, keys and tools.
        journal: where firings are journaled (each run gets its own connection).
        clock: time and ids.
        group: where runs execute; the launcher never waits for them.
    """

    settings: Settings
    environ: Mapping[str, str]
    journal: Journal
    clock: Clock
    group: TaskGroup
    triggers: Mapping[str, Trigger] = field(default_factory=dict[str, Trigger])
    """The daemon's triggers by name (a resumed run runs under its trigger's approvals)."""
    active: dict[str, int] = field(default_factory=dict[str, int])
    executing: set[str] = field(default_factory=set[str])
    """Runs this launcher has queued or is executing (never adopted twice)."""
    _lock: anyio.Lock = field(default_factory=anyio.Lock)
    _slots: anyio.CapacityLimiter | None = None

    async def fire(self, firing: Firing) -> tuple[Accepted, str | None]:
        """Journal ``firing`` and start its run; what happened, and the run's id.

        A firing whose stable id is journaled already is a ``duplicate`` (checked
        first: a redelivery while the first run goes is not ``busy``). A task that
        cannot be read or run (a bad file or template, an unknown model) is
        ``skipped``, journaled with why.
        """
        trigger = firing.trigger
        stream = stream_of(trigger.name)
        source = _SOURCES[trigger.on]
        # Secrets never reach the journal or the model, a sender's payload included.
        firing = replace(firing, payload=Redactor(self.environ).redact_json(firing.payload))
        async with self._lock:
            if firing.event_id is not None:
                earlier = await self.journal.find_event(firing.event_id)
                if earlier is not None:
                    data = earlier.data
                    return "duplicate", data.started_run if isinstance(data, TriggerFired) else None
            if self.active.get(trigger.name, 0) >= trigger.max_concurrent:
                busy = f"busy: {trigger.max_concurrent} run(s) of this trigger still going"
                await self._record(firing.fired(None, busy), stream, source)
                return "busy", None
            try:
                create = self._planned(firing)
            except GmAgentError as exc:
                log.warning("trigger %s cannot run its task: %s", trigger.name, exc)
                await self._record(firing.fired(None, f"cannot run: {exc}"), stream, source)
                return "skipped", None
            run_id = self.clock.new_id()
            fired = new_event(
                self.clock, stream, source, firing.fired(run_id), event_id=firing.event_id
            )
            try:
                await create(run_id, fired)
            except DuplicateEvent as exc:
                earlier = getattr(exc.existing, "data", None)
                return "duplicate", earlier.started_run if isinstance(
                    earlier, TriggerFired
                ) else None
            self.active[trigger.name] = self.active.get(trigger.name, 0) + 1
            self.executing.add(run_id)
        self.group.start_soon(self._execute, run_id, trigger)
        return "started", run_id

    def _planned(self, firing: Firing) -> Callable[[str, Event], Awaitable[object]]:
        """How to record the run ``firing`` starts (its task's, or its scheme's):
        ``create(run_id, fired)``.

        Raises:
            GmAgentError: the task or scheme cannot be read or run (a bad file,
                template or parameter, an unknown model).
        """
        trigger = firing.trigger
        if trigger.scheme:
            record = plan_scheme(self.settings.workspace, trigger.scheme, trigger.params)
            model = scheme_model(record, self.settings, self.environ, trigger.model)
            return lambda run_id, fired: create_scheme_run(
                self.journal,
                self.clock,
                record,
                model=model,
                settings=self.settings,
                first=[fired],
                trigger=trigger.name,
                run_id=run_id,
            )
        task = load_task(self.settings.workspace / trigger.task)
        task = task.model_copy(update={"text": render_task(task.text, firing)})
        plan = plan_run(
            task, self.settings, self.environ, model=trigger.model, cwd=self.settings.workspace
        )
        return lambda run_id, fired: plan.create(
            self.journal, self.clock, run_id=run_id, first=[fired], trigger=trigger.name
        )

    async def _record(self, data: TriggerFired, stream: str, source: EventSource) -> None:
        await self.journal.append([new_event(self.clock, stream, source, data)])

    async def adopt(self, run_id: str, trigger: str | None) -> bool:
        """Resume run ``run_id`` (orphaned: its process died) in the group, under
        its trigger's approvals; ``False`` when this launcher runs it already."""
        if run_id in self.executing:
            return False
        self.executing.add(run_id)
        self.group.start_soon(self._execute, run_id, None, self.triggers.get(trigger or ""))
        return True

    async def _execute(
        self, run_id: str, counted: Trigger | None, trigger: Trigger | None = None
    ) -> None:
        """Drive ``run_id`` when a slot is free; ``counted`` is the trigger whose
        ``active`` count it holds (a new run's), ``trigger`` gives the approvals."""
        if self._slots is None:
            self._slots = anyio.CapacityLimiter(self.settings.serve.max_runs)
        trigger = trigger or counted
        try:
            async with self._slots:
                row = await self.journal.get_run(run_id)
                if counted is None and not row.orphaned:
                    return  # taken over, paused or ended while it queued
                await self._drive(run_id, trigger)
        except GmAgentError as exc:  # one run's trouble never stops the daemon
            log.warning("run %s stopped: %s", run_id, exc)
        except Exception:
            log.exception("run %s stopped by an error in gm", run_id)
        finally:
            self.executing.discard(run_id)
            if counted is not None:
                self.active[counted.name] -= 1

    async def _drive(self, run_id: str, trigger: Trigger | None) -> None:
        settings = self.settings
        approvals = trigger.approvals if trigger is not None else "stop"
        pool = model_pool(settings, self.environ, settings.workspace)
        try:
            async with await Journal.open(
                settings.journal_path, durability=settings.journal.durability, clock=self.clock
            ) as journal:
                if await scheme_record_of(journal, run_id) is not None:
                    outcome = await execute_scheme(
                        journal, run_id, settings, self.clock, self.environ, approvals=approvals
                    )
                    log.info("run %s %s", run_id, outcome.status)
                    return
                state_model = (await journal.get_run(run_id)).model
                kernel = kernel_for(
                    journal,
                    pool.get(state_model),
                    settings,
                    self.clock,
                    self.environ,
                    None,
                    approvals=approvals,
                    models=pool,
                )
                outcome = await kernel.execute(run_id)
                log.info("run %s %s", run_id, outcome.status)
        finally:
            await pool.aclose()
