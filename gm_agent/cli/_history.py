"""``gm replay``, ``gm fork`` and ``gm compare``: a run's history checked, branched, compared."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from gm_agent.cli._support import (
    approval_mode,
    approval_options,
    exit_with,
    observer,
    open_journal,
    run_async,
    workspace_of,
)

if TYPE_CHECKING:
    from gm_agent.kernel import Comparison, ReplayReport

EXIT_DIVERGED = 1


@click.command()
@click.argument("run_ref", metavar="[RUN]", default="last")
@click.option(
    "--recorded",
    is_flag=True,
    help="Re-run the kernel's decisions with model replies and job results from the journal.",
)
@click.option("--quiet", "-q", is_flag=True, help="Only the verdict, not the timeline.")
@click.pass_context
def replay(ctx: click.Context, run_ref: str, recorded: bool, quiet: bool) -> None:
    """Fold RUN (default `last`) again from its events, with no side effects, and check it.

    Checks that no event changed since it was written, that the events fold,
    and that the state at every checkpoint hashes as recorded. With --recorded,
    asks today's kernel what it would do at every point the run acted, and
    reports the first difference. Exit 0 when consistent, 1 naming the first
    diverging seq.
    """
    from gm_agent._render import timeline
    from gm_agent.kernel import replay_recorded, replay_run
    from gm_agent.tools import builtin_tools

    async def check() -> ReplayReport:
        async with await open_journal(workspace_of(ctx)) as journal:
            run_id = await journal.resolve_run(run_ref)
            if recorded:
                return await replay_recorded(journal, run_id, builtin_tools())
            return await replay_run(journal, run_id)

    report = run_async(check)
    if not quiet:
        for line in timeline(report.events):
            click.echo(line)
    problem = report.first_divergence
    if problem is not None:
        click.echo(
            f"gm: replay of run {report.run_id} diverges at seq {problem.seq}: {problem.message}",
            err=True,
        )
        sys.exit(EXIT_DIVERGED)
    what = (
        "the loop makes the same decisions"
        if recorded
        else f"checkpoints matching: {report.checkpoints}"
    )
    click.echo(
        f"replay of run {report.run_id} is consistent: {len(report.events)} events, {what}; "
        f"state {report.state_hash[:16]}"
    )


@click.command()
@click.argument("run_ref", metavar="RUN")
@click.option("--at", "at_seq", type=int, required=True, help="The fork point: a seq of RUN.")
@click.option("--model", "-m", help="The fork's model (default: the run's).")
@click.option("--message", help="A message to the model, added after the fork point.")
@click.option("--max-steps", type=click.IntRange(min=1), help="The fork's step budget.")
@click.option("--force", is_flag=True, help="Restore files even over edits made since.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print each event as one JSON line as it is committed."
)
@approval_options
@click.pass_context
def fork(
    ctx: click.Context,
    run_ref: str,
    at_seq: int,
    model: str | None,
    message: str | None,
    max_steps: int | None,
    force: bool,
    as_json: bool,
    yes: bool,
    no_input: bool,
    wait_for_approval: bool,
) -> None:
    """Start a new run that shares RUN's history up to seq AT, and continue it live.

    The workspace files are first restored to their state at AT (as the fork's
    first patch, so `gm undo FORK` brings RUN's result back). Pick AT from
    `gm replay RUN` or `gm log RUN`: it must be between tool calls. Exit codes
    as for `gm run`.
    """
    from gm_agent.kernel import fork_run

    outcome = run_async(
        lambda: fork_run(
            workspace_of(ctx),
            run_ref,
            os.environ,
            at_seq=at_seq,
            model=model,
            message=message,
            max_steps=max_steps,
            force=force,
            observer=observer(as_json),
            approvals=approval_mode(yes, no_input, wait_for_approval),
        )
    )
    exit_with(outcome)


@click.command()
@click.argument("run_a", metavar="RUN_A")
@click.argument("run_b", metavar="RUN_B")
@click.option("--stat", is_flag=True, help="Files as one line each, without their diffs.")
@click.pass_context
def compare(ctx: click.Context, run_a: str, run_b: str, stat: bool) -> None:
    """Where RUN_A and RUN_B part ways: first differing step, calls, tokens and files."""
    from gm_agent.kernel import compare_runs

    async def load() -> Comparison:
        async with await open_journal(workspace_of(ctx)) as journal:
            a = await journal.resolve_run(run_a)
            b = await journal.resolve_run(run_b)
            return await compare_runs(journal, a, b)

    _show_comparison(run_async(load), stat)


def _show_comparison(result: Comparison, stat: bool) -> None:
    from gm_agent._render import comparison_lines

    for line in comparison_lines(result):
        click.echo(line)
    if not result.file_diffs:
        click.echo("files: both runs left the workspace the same")
    for path, diff, added, removed in result.file_diffs:
        click.echo(f" {path} | +{added} -{removed}" if stat else diff.rstrip("\n"))
