"""The library functions behind ``gm run`` and ``gm resume``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
from ulid import ULID

from gm_agent.clock import Clock, SystemClock
from gm_agent.errors import UserError
from gm_agent.events import (
    BudgetRaised,
    ContextLoaded,
    Event,
    RunCreated,
    UserMessage,
    new_event,
)
from gm_agent.journal import Journal
from gm_agent.kernel._approvals import ApprovalMode
from gm_agent.kernel._checkpoint import load_state
from gm_agent.kernel._project_context import load_project_context
from gm_agent.kernel._scheme_kernel import execute_scheme
from gm_agent.kernel._scheme_record import parent_run_of, scheme_record_of
from gm_agent.kernel.loop import EventObserver, Kernel, RunOutcome
from gm_agent.kernel.state import TERMINAL, RunState
from gm_agent.kernel.task import TaskSpec, load_task
from gm_agent.llm import Model, ModelPool, default_model_name, make_model
from gm_agent.policy import Redactor
from gm_agent.settings import BudgetSettings, Settings, load_settings
from gm_agent.skills import SkillSet, catalog, discover_skills
from gm_agent.tools import builtin_tools

__all__ = [
    "RunPlan",
    "absolute_model",
    "checked_run_id",
    "create_run",
    "kernel_for",
    "model_pool",
    "open_existing",
    "plan_run",
    "require_workspace",
    "resumable_runs",
    "resume_run",
    "run_task",
]


async def create_run(
    journal: Journal,
    clock: Clock,
    task: TaskSpec,
    *,
    model: str,
    max_steps: int,
    workspace: Path,
    budget: BudgetSettings | None = None,
    fallbacks: tuple[str, ...] = (),
    context: ContextLoaded | None = None,
    run_id: str | None = None,
    first: Sequence[Event] = (),
    trigger: str | None = None,
) -> str:
    """Record a new run of ``task``: ``run.created``, the project ``context`` if
    any (``context.loaded``), and the task as ``user.message``, in one commit.

    ``budget`` is gm.toml's; the task's ``budget:`` keys win over it. ``first``
    events (a ``trigger.fired``) are committed before, in the same transaction,
    and must be new (``DuplicateEvent`` otherwise, with nothing committed).

    Returns:
        The new run's id (a ULID, or ``run_id``).
    """
    run_id = run_id or clock.new_id()
    if await journal.has_run(run_id):
        raise UserError(f"there is already a run {run_id!r}; choose another id")
    created = RunCreated(
        task=task.text,
        task_path=str(task.path) if task.path else None,
        model=model,
        max_steps=max_steps,
        tools=task.tools,
        instructions=task.instructions,
        workspace=str(workspace),
        rules=tuple(r.model_dump(mode="json") for r in task.policy.rules) if task.policy else (),
        budget={
            **(budget or BudgetSettings()).model_dump(exclude_none=True),
            **(task.budget.model_dump(exclude_none=True) if task.budget else {}),
        },
        network=task.sandbox is not None and task.sandbox.network,
        fallbacks=fallbacks,
        trigger=trigger,
    )
    events = [*first, new_event(clock, run_id, "kernel", created)]
    if context is not None:
        events.append(new_event(clock, run_id, "kernel", context))
    events.append(new_event(clock, run_id, "user", UserMessage(text=task.text)))
    await journal.append(events, unique=[e.id for e in first])
    return run_id


def checked_run_id(run_id: str | None) -> str | None:
    """``run_id`` checked to be a ULID (what every other run id is), in its
    canonical upper-case form (Crockford base32 is case-insensitive); ``None``
    stays ``None``.

    Raises:
        UserError: it is not one.
    """
    if run_id is None:
        return None
    try:
        return str(ULID.from_str(run_id))
    except ValueError as exc:
        raise UserError(
            f"run id {run_id!r} is not a ULID (26 Crockford base32 characters)"
        ) from exc


def absolute_model(name: str) -> str:
    """``scripted:REL`` made absolute against the current directory, so a resume finds it."""
    if name.startswith("scripted:") and not Path(name.removeprefix("scripted:")).is_absolute():
        return f"scripted:{Path.cwd() / name.removeprefix('scripted:')}"
    return name


def require_workspace(state: RunState, workspace: Path, verb: str) -> None:
    """Refuse to ``verb`` a run recorded in another directory than ``workspace``.

    Raises:
        UserError: the run's workspace is not ``workspace`` (the project was moved
            or copied: its files are not where the journal says).
    """
    if state.workspace and Path(state.workspace) != workspace:
        raise UserError(
            f"run {state.run_id} works in {state.workspace!r}, but this journal is in "
            f"{str(workspace)!r} (was the project moved or copied?); {verb} it where it was "
            "created"
        )


async def run_task(
    task_path: Path,
    *,
    workspace: Path,
    environ: Mapping[str, str],
    model: str | None = None,
    max_steps: int | None = None,
    clock: Clock | None = None,
    observer: EventObserver | None = None,
    on_created: Callable[[str], None] | None = None,
    heartbeat: bool = True,
    approvals: ApprovalMode = "stop",
    run_id: str | None = None,
) -> RunOutcome:
    """Create a run of the task at ``task_path`` in ``workspace`` and drive it to its end.

    The model is the first of: ``model``, the task's ``model:``, ``GM_MODEL``,
    gm.toml's ``model``, and the local model when installed. The step budget is
    the first of ``max_steps``, the task's ``max_steps:``, gm.toml's (default 30).

    Args:
        task_path: the task.md file.
        workspace: the project directory; the journal is ``workspace/.gm/journal.db``.
        environ: environment for settings, API keys and tools (secrets are
            removed before tools see it).
        observer: called with each event as it is committed.
        on_created: called with the run id once the run is recorded.
        heartbeat: renew the run's lease in the background; turn it off only with
            a fake clock, whose sleeps return at once.
        approvals: when a call needs approval: ``stop`` (default; the run stays
            ``waiting``, exit code 3), ``wait`` for an answer, or ``yes``.
        run_id: the new run's id (a ULID), chosen by the caller so it knows the
            run it started (``gm run --tui``); a new ULID when ``None``.

    Raises:
        UserError: the task file, settings, model name or tool allow-list is wrong,
            or ``run_id`` is not a ULID or is taken (nothing is journaled then).
        JournalError: the journal cannot be used.
    """
    clock = clock or SystemClock()
    workspace = Path(await anyio.Path(workspace).resolve())
    settings = load_settings(workspace, environ)
    plan = plan_run(load_task(task_path), settings, environ, model=model, max_steps=max_steps)
    chosen_id = checked_run_id(run_id)
    pool = model_pool(settings, environ, Path.cwd())
    llm = pool.get(plan.model)
    try:
        async with await Journal.open(
            settings.journal_path, durability=settings.journal.durability, clock=clock
        ) as journal:
            run_id = await plan.create(journal, clock, run_id=chosen_id)
            if on_created is not None:
                on_created(run_id)
            kernel = kernel_for(
                journal, llm, settings, clock, environ, observer, heartbeat, approvals, pool
            )
            kernel.announce(await journal.read(run_id))  # what create_run wrote
            return await kernel.execute(run_id)
    finally:
        await pool.aclose()


@dataclass(frozen=True)
class RunPlan:
    """A run ready to be recorded: the task (redacted), its model and fallbacks,
    its step budget and the project context, checked against the settings."""

    task: TaskSpec
    settings: Settings
    model: str
    fallbacks: tuple[str, ...]
    max_steps: int
    context: ContextLoaded | None

    async def create(
        self,
        journal: Journal,
        clock: Clock,
        *,
        run_id: str | None = None,
        first: Sequence[Event] = (),
        trigger: str | None = None,
    ) -> str:
        """Record the run (see :func:`create_run`); its id."""
        return await create_run(
            journal,
            clock,
            self.task,
            model=self.model,
            max_steps=self.max_steps,
            workspace=self.settings.workspace,
            budget=self.settings.budget,
            fallbacks=self.fallbacks,
            context=self.context,
            run_id=run_id,
            first=first,
            trigger=trigger,
        )


def plan_run(
    task: TaskSpec,
    settings: Settings,
    environ: Mapping[str, str],
    *,
    model: str | None = None,
    max_steps: int | None = None,
    cwd: Path | None = None,
) -> RunPlan:
    """Check ``task`` and pick what its run uses.

    The model is the first of: ``model``, the task's ``model:``, ``GM_MODEL``,
    gm.toml's ``model`` (or ``models``' first), and the local model. The step
    budget is the first of ``max_steps``, the task's, gm.toml's. Project context
    files are read from the workspace down to ``cwd`` (default: the current
    directory). Secrets in the task and the context are redacted.

    Raises:
        UserError: an unknown tool in the allow-list, or a model or fallback name
            gm cannot make (nothing is journaled then).
    """
    cwd = cwd or Path.cwd()
    redactor = Redactor(environ)
    task = task.model_copy(update={"text": redactor.redact(task.text)})
    context = load_project_context(
        settings.workspace, cwd, names=settings.context.files, max_bytes=settings.context.max_bytes
    )
    tools = builtin_tools().select(task.tools)  # an unknown tool fails before the run exists
    if any(tool.name == "load_skill" for tool in tools):
        context = with_skills(context, discover_skills(settings.workspace, environ))
    if context is not None:  # secrets never reach the journal or the model
        context = context.model_copy(update={"text": redactor.redact(context.text)})
    preferred = task.models or settings.models
    model_name = absolute_model(
        model
        or task.model
        or settings.model
        or (preferred[0] if preferred else None)
        or default_model_name(environ)
    )
    fallbacks = tuple(absolute_model(m) for m in preferred if absolute_model(m) != model_name)
    for name in (model_name, *fallbacks):  # a misspelt fallback fails now, not mid-outage
        make_model(name, settings, environ, base_dir=cwd)
    return RunPlan(
        task=task,
        settings=settings,
        model=model_name,
        fallbacks=fallbacks,
        max_steps=max_steps or task.max_steps or settings.max_steps,
        context=context,
    )


def with_skills(context: ContextLoaded | None, skills: SkillSet) -> ContextLoaded | None:
    """``context`` with the skill catalogue (names and descriptions) at its end;
    ``None`` stays ``None`` when there are no skills either."""
    listed = catalog(skills)
    if not listed:
        return context
    base = context or ContextLoaded(files=(), text="")
    return base.model_copy(
        update={
            "text": "\n\n".join(part for part in (base.text, listed) if part),
            "skills": tuple(f"{s.name} ({s.source})" for s in skills),
        }
    )


def model_pool(settings: Settings, environ: Mapping[str, str], base_dir: Path) -> ModelPool:
    """Models by name for a run (its model and fallbacks), each behind its breaker."""
    return ModelPool(lambda name: make_model(name, settings, environ, base_dir=base_dir))


def kernel_for(
    journal: Journal,
    llm: Model,
    settings: Settings,
    clock: Clock,
    environ: Mapping[str, str],
    observer: EventObserver | None,
    heartbeat: bool = True,
    approvals: ApprovalMode = "stop",
    models: ModelPool | None = None,
) -> Kernel:
    """A kernel over ``journal`` with the built-in tools; ``models`` supplies fallbacks."""
    return Kernel(
        journal,
        llm,
        builtin_tools(),
        settings,
        clock=clock,
        environ=environ,
        observer=observer,
        heartbeat=heartbeat,
        approvals=approvals,
        models=models,
    )


async def open_existing(settings: Settings, clock: Clock) -> Journal:
    """The workspace's journal for writing; it must exist already.

    Raises:
        JournalError: there is no journal, or it cannot be used.
    """
    return await Journal.open(
        settings.journal_path, durability=settings.journal.durability, clock=clock, create=False
    )


async def resume_run(
    run_ref: str,
    *,
    workspace: Path,
    environ: Mapping[str, str],
    clock: Clock | None = None,
    observer: EventObserver | None = None,
    approvals: ApprovalMode = "stop",
    max_steps: int | None = None,
    budget: Mapping[str, float] | None = None,
) -> RunOutcome:
    """Take over a stopped run (paused, waiting, or orphaned by a crash) and drive it
    to its end.

    ``max_steps`` and ``budget`` (``{"max_tool_calls": 50, ...}``, the keys of
    ``[budget]``) raise the run's limits first, as a ``budget.raised`` event.

    Recorded job results are served, never re-run; a model request cut off is
    re-sent under the same idempotency key; a non-idempotent job cut off is
    reported as ``job.ambiguous``. The model is the one the run was created with.

    Raises:
        RunNotFound: ``run_ref`` matches no run.
        RunLeased: another live process is executing it.
        UserError: the run already ended.
    """
    clock = clock or SystemClock()
    workspace = Path(await anyio.Path(workspace).resolve())
    settings = load_settings(workspace, environ)
    async with await open_existing(settings, clock) as journal:
        run_id = await journal.resolve_run(run_ref)
        state, _ = await load_state(journal, run_id)
        require_workspace(state, workspace, "resume")
        if max_steps is not None or budget:
            limits = BudgetSettings.model_validate(dict(budget or {}))
            raised = BudgetRaised(max_steps=max_steps, budget=limits.model_dump(exclude_none=True))
            await journal.append([new_event(clock, run_id, "user", raised)])
        if await scheme_record_of(journal, run_id) is not None:  # a scheme run: its steps
            return await execute_scheme(
                journal, run_id, settings, clock, environ, observer, approvals=approvals
            )
        pool = model_pool(settings, environ, workspace)
        try:
            kernel = kernel_for(
                journal,
                pool.get(state.model),
                settings,
                clock,
                environ,
                observer,
                approvals=approvals,
                models=pool,
            )
            return await kernel.execute(run_id)
        finally:
            await pool.aclose()


async def resumable_runs(workspace: Path, environ: Mapping[str, str]) -> list[str]:
    """Ids of the runs ``gm resume --all`` takes over: paused or orphaned, oldest
    first; not the agent runs of a scheme's steps (resuming the scheme run drives them)."""
    settings = load_settings(workspace, environ)
    async with await Journal.open(settings.journal_path, create=False) as journal:
        rows = await journal.list_runs()
        stopped = [
            row.run_id
            for row in reversed(rows)
            if row.status not in TERMINAL and (row.status == "paused" or row.orphaned)
        ]
        return [run_id for run_id in stopped if await parent_run_of(journal, run_id) is None]
