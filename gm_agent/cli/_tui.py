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


async def _run_ids(workspace: Path) -> set[str]:
    from gm_agent.journal import Journal

    path = workspace / ".gm" / "journal.db"
    if not path.exists():
        return set()
    async with await Journal.open(path, read_only=True) as journal:
        return {row.run_id for row in await journal.list_runs()}


def run_in_tui(workspace: Path, task: Path, options: list[str]) -> None:
    """Start ``gm run TASK`` in the background (waiting for approvals from the
    TUI), then open the TUI on it."""
    from gm_agent.clock import SystemClock
    from gm_agent.tui import GmApp
    from gm_agent.tui._actions import start_run

    async def started() -> str | None:
        clock = SystemClock()
        before = await _run_ids(workspace)
        start_run(workspace, task, options)
        waited = 0.0
        while waited < STARTUP_S:
            if new := await _run_ids(workspace) - before:
                return min(new)
            await clock.sleep(0.1)
            waited += 0.1
        return None

    run_id = run_async(started)
    if run_id is None:
        raise click.ClickException("the run did not start; see .gm/logs/")
    GmApp(workspace, os.environ, run_id=run_id).run()
