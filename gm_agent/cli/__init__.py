"""The ``gm`` command. Thin: parse, call one library function, render.

Heavy modules (pydantic, sqlite3, httpx, llama.cpp) are imported inside the
commands, so ``gm --help`` stays fast. Commands live in modules by concern:
running (``_runs``), changing files back (``_changes``) and history (``_history``).
"""

from __future__ import annotations

import click

from gm_agent import __version__
from gm_agent.cli import _changes, _control, _history, _runs, _schemes, _serve, _skills, _tui

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gm")
@click.option(
    "-C",
    "--workspace",
    type=click.Path(file_okay=False, exists=True),
    default=".",
    show_default=True,
    help="The project directory (its journal is .gm/journal.db).",
)
@click.pass_context
def main(ctx: click.Context, workspace: str) -> None:
    """gm: a durable runtime for autonomous agents.

    Every run is journaled in .gm/journal.db: watch it, read it, replay it.
    """
    ctx.obj = {"workspace": workspace}


for command in (
    _runs.run,
    _runs.resume,
    _runs.runs,
    _runs.log,
    _runs.status,
    _runs.export,
    _runs.doctor,
    _changes.diff,
    _changes.undo,
    _changes.redo,
    _control.approve,
    _control.deny,
    _control.send,
    _control.interrupt,
    _control.cancel,
    _history.replay,
    _history.fork,
    _history.compare,
    _schemes.scheme,
    _serve.serve,
    _skills.skills,
    _tui.tui,
):
    main.add_command(command)
