"""``gm tui`` and ``gm run --tui``: the Textual window onto the journal."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from gm_agent.cli._support import run_async, workspace_of

STARTUP_S = 60.0
"""How long ``gm run --tui`` waits for its background run to be journaled, in seconds."""


@click.command()
@click.argument("run_ref", metavar="[RUN]", required=False)
@click.pass_context
def tui(ctx: click.Context, run_ref: str | None) -> None:
    """Watch and steer the workspace's runs (RUN: open that one first).

    Every key is a journaled command, as the CLI's; `?` lists the keys. Closing
    the TUI never affects a run.
    """
    workspace = workspace_of(ctx)
    if not (workspace / ".gm" / "journal.db").exists():
        raise click.UsageError("no runs here yet: start one with `gm run TASK`")
    from gm_agent.tui import GmApp

    async def resolve(ref: str) -> str:  # a wrong RUN is a usage error, before any screen
        from gm_agent.journal import Journal

        async with await Journal.open(workspace / ".gm" / "journal.db", read_only=True) as journal:
            return await journal.resolve_run(ref)

    run_id = run_async(lambda: resolve(run_ref)) if run_ref else None
    app = GmApp(workspace, os.environ, run_id=run_id)
    app.run()
    sys.exit(app.return_code or 0)


def run_in_tui(workspace: Path, task: Path, options: list[str], run_id: str | None) -> None:
    """Start ``gm run TASK`` in the background (waiting for approvals from the
    TUI) with a run id chosen here, wait until it is journaled, then open the
    TUI on it.

    Args:
        workspace: the project directory.
        task: the task file.
        options: ``gm run`` options to pass on.
        run_id: a ULID the caller chose (any case), else a new one.

    Raises:
        click.UsageError: ``run_id`` is not a ULID; or the run exited before it was journaled (a malformed
            task, a wrong model), with what it said (its last ``gm:`` line).
        click.ClickException: it was not journaled within ``STARTUP_S``
            seconds; the child is killed, so no run waits unseen.
    """
    from gm_agent.clock import SystemClock
    from gm_agent.errors import JournalError, UserError
    from gm_agent.journal import Journal
    from gm_agent.kernel import checked_run_id
    from gm_agent.tui import GmApp
    from gm_agent.tui._actions import start_run
    from gm_agent.tui._spawn import Children

    clock = SystemClock()
    try:
        run_id = checked_run_id(run_id) or clock.new_id()
    except UserError as exc:
        raise click.UsageError(str(exc)) from exc
    children = Children(workspace, os.environ)
    child = start_run(children, task, options, run_id)
    path = workspace / ".gm" / "journal.db"

    async def journaled() -> bool:
        try:
            async with await Journal.open(path, read_only=True) as journal:
                return await journal.has_run(run_id)
        except JournalError:  # not created, or not yet migrated, by the run
            return False

    async def started() -> None:
        waited = 0.0
        while not await journaled():
            code = child.process.poll()
            if code is not None:
                raise click.UsageError(
                    f"the run did not start (gm run exited with {code}): "
                    f"{child.gist() or 'no output'}; the whole output is in {child.log}"
                )
            if waited >= STARTUP_S:
                child.process.kill()  # with the run never shown, it would wait for no one
                raise click.ClickException(
                    f"the run did not start in {STARTUP_S:.0f} s; see {child.log}"
                )
            await clock.sleep(0.05)
            waited += 0.05

    run_async(started)
    app = GmApp(workspace, os.environ, run_id=run_id, processes=children)
    app.run()
    sys.exit(app.return_code or 0)
