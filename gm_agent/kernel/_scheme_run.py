"""The library function behind ``gm scheme run``: record a scheme run, then drive it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import anyio

from gm_agent.clock import Clock, SystemClock
from gm_agent.errors import GmAgentError, UserError
from gm_agent.events import Event, RunCreated, UserMessage, new_event
from gm_agent.journal import Journal
from gm_agent.kernel._approvals import ApprovalMode
from gm_agent.kernel._core import EventObserver
from gm_agent.kernel._run import absolute_model
from gm_agent.kernel._scheme_kernel import execute_scheme
from gm_agent.kernel._scheme_record import SchemeRecord, record_scheme
from gm_agent.kernel._scheme_text import scheme_task
from gm_agent.kernel.loop import RunOutcome
from gm_agent.llm import default_model_name, make_model
from gm_agent.schemes import Scheme, bind_params, check_scheme, find_scheme
from gm_agent.settings import Settings, load_settings
from gm_agent.tools import builtin_tools

__all__ = ["NO_MODEL", "create_scheme_run", "plan_scheme", "run_scheme", "scheme_model"]

NO_MODEL = "none"
"""The model of a scheme run that needs none (only shell and tool steps, no
fallback) when no model is configured."""


def _needs_model(scheme: Scheme) -> bool:
    """Whether ``scheme`` asks a model itself: an ``llm`` or ``agent`` step, or a
    ``fallback`` (the schemes its ``scheme`` steps call are checked apart)."""
    return any(
        step.llm is not None or step.agent is not None or step.on_error == "fallback"
        for step in scheme.steps
    )


def scheme_model(
    record: SchemeRecord, settings: Settings, environ: Mapping[str, str], model: str | None
) -> str:
    """The run's model: ``model``, gm.toml's, or the local one; :data:`NO_MODEL` for a
    scheme that asks none when none is configured.

    Raises:
        UserError: the scheme needs a model and none is configured, or gm cannot make it.
    """
    preferred = model or settings.model or (settings.models[0] if settings.models else None)
    needed = _needs_model(record.scheme) or any(
        _needs_model(record.subscheme(name)) for name in record.subschemes
    )
    if preferred is None:
        try:
            preferred = default_model_name(environ)
        except GmAgentError:
            if needed:
                raise
            return NO_MODEL
    name = absolute_model(preferred)
    # A misspelt name fails now, made against the same base as the run will (execute_scheme).
    make_model(name, settings, environ, base_dir=settings.workspace)
    return name


def plan_scheme(
    workspace: Path, name_or_path: str, given: Mapping[str, str | object]
) -> SchemeRecord:
    """Find the scheme, check it as ``gm scheme validate`` does (tools, their
    arguments, the schemes it calls), bind its parameters and freeze it all.

    Raises:
        SchemeError: no such scheme, an invalid file, an unknown tool or
            argument, a bad scheme call, or bad parameters.
    """
    scheme = find_scheme(workspace, name_or_path)
    check_scheme(workspace, scheme, builtin_tools().args_models())
    return record_scheme(workspace, scheme, bind_params(scheme, given))


async def create_scheme_run(
    journal: Journal,
    clock: Clock,
    record: SchemeRecord,
    *,
    model: str,
    settings: Settings,
    first: Sequence[Event] = (),
    trigger: str | None = None,
    run_id: str | None = None,
) -> str:
    """Record a new scheme run: ``run.created`` (with the frozen scheme) and its task
    line as ``user.message``, in one commit; ``first`` events (a ``trigger.fired``)
    before them, which must be new.

    Returns:
        The new run's id.
    """
    run_id = run_id or clock.new_id()
    if await journal.has_run(run_id):
        raise UserError(f"there is already a run {run_id!r}; choose another id")
    task = scheme_task(record)
    created = RunCreated(
        task=task,
        task_path=record.path or None,
        model=model,
        max_steps=settings.max_steps,
        workspace=str(settings.workspace),
        budget=settings.budget.model_dump(exclude_none=True),
        fallbacks=tuple(absolute_model(m) for m in settings.models if absolute_model(m) != model),
        trigger=trigger,
        scheme=record.to_json(),
    )
    events = [
        *first,
        new_event(clock, run_id, "kernel", created),
        new_event(clock, run_id, "user", UserMessage(text=task)),
    ]
    await journal.append(events, unique=[e.id for e in first])
    return run_id


async def run_scheme(
    name_or_path: str,
    *,
    workspace: Path,
    environ: Mapping[str, str],
    params: Mapping[str, str | object] | None = None,
    model: str | None = None,
    clock: Clock | None = None,
    observer: EventObserver | None = None,
    on_created: Callable[[str], None] | None = None,
    heartbeat: bool = True,
    approvals: ApprovalMode = "stop",
) -> RunOutcome:
    """Run the scheme ``name_or_path`` with ``params`` (``-p key=value``) to its end.

    The scheme (and those it calls) is frozen into the run's ``run.created``, so a
    ``gm resume`` runs exactly it. The model (for ``llm`` and ``agent`` steps and a
    ``fallback``) is the first of ``model``, gm.toml's and the local model.

    Raises:
        SchemeError: the scheme cannot be found or is invalid, or ``params`` do not fit it.
        UserError: no model for a scheme that needs one (nothing is journaled then).
        JournalError: the journal cannot be used.
    """
    clock = clock or SystemClock()
    workspace = Path(await anyio.Path(workspace).resolve())
    settings = load_settings(workspace, environ)
    record = plan_scheme(workspace, name_or_path, params or {})
    model_name = scheme_model(record, settings, environ, model)
    async with await Journal.open(
        settings.journal_path, durability=settings.journal.durability, clock=clock
    ) as journal:
        run_id = await create_scheme_run(
            journal, clock, record, model=model_name, settings=settings
        )
        if on_created is not None:
            on_created(run_id)
        if observer is not None:
            for event in await journal.read(run_id):
                observer(event)
        return await execute_scheme(
            journal,
            run_id,
            settings,
            clock,
            environ,
            observer,
            heartbeat=heartbeat,
            approvals=approvals,
        )
