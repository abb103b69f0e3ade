"""``gm run``'s library function: from a task file to a finished run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import anyio

from gm_agent.clock import Clock, SystemClock
from gm_agent.journal import Journal
from gm_agent.kernel.loop import EventObserver, Kernel, RunOutcome, create_run
from gm_agent.kernel.task import load_task
from gm_agent.llm import default_model_name, make_model
from gm_agent.settings import load_settings
from gm_agent.tools import builtin_tools

__all__ = ["run_task"]


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

    Raises:
        UserError: the task file, settings, model name or tool allow-list is wrong
            (nothing is journaled then).
        JournalError: the journal cannot be used.
    """
    clock = clock or SystemClock()
    workspace = Path(await anyio.Path(workspace).resolve())
    settings = load_settings(workspace, environ)
    task = load_task(task_path)
    registry = builtin_tools()
    registry.select(task.tools)  # an unknown tool in the allow-list fails before the run exists
    model_name = model or task.model or settings.model or default_model_name()
    llm = make_model(model_name, settings, environ, base_dir=Path.cwd())
    try:
        async with await Journal.open(
            settings.journal_path, durability=settings.journal.durability, clock=clock
        ) as journal:
            run_id = await create_run(
                journal,
                clock,
                task,
                model=model_name,
                max_steps=max_steps or task.max_steps or settings.max_steps,
                workspace=workspace,
            )
            if on_created is not None:
                on_created(run_id)
            if observer is not None:  # the kernel reports what it commits; these came first
                for event in await journal.read(run_id):
                    observer(event)
            kernel = Kernel(
                journal, llm, registry, settings, clock=clock, environ=environ, observer=observer
            )
            return await kernel.execute(run_id)
    finally:
        await llm.aclose()
