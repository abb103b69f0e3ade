"""``gm diff``, ``gm undo`` and ``gm redo``: a run's changes to the workspace."""

from __future__ import annotations

import os

import click

from gm_agent.cli._support import run_async, workspace_of


@click.command()
@click.argument("run_ref", metavar="[RUN]", default="last")
@click.option("--stat", is_flag=True, help="Only a line per file with added and removed lines.")
@click.pass_context
def diff(ctx: click.Context, run_ref: str, stat: bool) -> None:
    """Show the net change RUN (default `last`) made to the workspace."""
    from gm_agent.kernel import run_diff

    diffs = run_async(lambda: run_diff(workspace_of(ctx), run_ref, os.environ))
    if not diffs:
        click.echo("the run changed no files (or its changes were undone)", err=True)
    for item in diffs:
        if stat:
            click.echo(f" {item.path} | +{item.added} -{item.removed}")
        else:
            click.echo(item.diff, nl=False)
    if stat and diffs:
        added, removed = sum(d.added for d in diffs), sum(d.removed for d in diffs)
        click.echo(f" {len(diffs)} files changed, {added} insertions(+), {removed} deletions(-)")


@click.command()
@click.argument("run_ref", metavar="[RUN]", default="last")
@click.option("--to", "to_seq", type=int, help="Only revert patches applied after this seq.")
@click.option(
    "--patch", "patch", metavar="ID", help="Only revert this patch (an id or a unique prefix)."
)
@click.option("--force", is_flag=True, help="Overwrite files edited since the run changed them.")
@click.pass_context
def undo(
    ctx: click.Context, run_ref: str, to_seq: int | None, patch: str | None, force: bool
) -> None:
    """Revert the changes RUN (default `last`) made, newest first, byte for byte.

    Refuses, naming the files and touching nothing, when a file was edited after
    the run changed it (by you, or for --patch by a later patch), unless --force.
    `gm redo` re-applies what this reverted.
    """
    from gm_agent.kernel import undo_run

    report = run_async(
        lambda: undo_run(
            workspace_of(ctx), run_ref, os.environ, to_seq=to_seq, patch=patch, force=force
        )
    )
    click.echo(
        f"reverted {len(report.patches)} patches of run {report.run_id}: {', '.join(report.files)}"
    )


@click.command()
@click.argument("run_ref", metavar="[RUN]", default="last")
@click.option("--force", is_flag=True, help="Overwrite files edited since the undo.")
@click.pass_context
def redo(ctx: click.Context, run_ref: str, force: bool) -> None:
    """Re-apply what the latest `gm undo` of RUN (default `last`) reverted."""
    from gm_agent.kernel import redo_run

    report = run_async(lambda: redo_run(workspace_of(ctx), run_ref, os.environ, force=force))
    click.echo(
        f"re-applied {len(report.patches)} patches of run {report.run_id}: {', '.join(report.files)}"
    )
