"""``gm run``, ``gm resume``, ``gm runs``, ``gm log``, ``gm status`` and ``gm export``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gm_agent.cli._support import (
    approval_mode,
    approval_options,
    exit_with,
    explain,
    json_line,
    observer,
    open_journal,
    run_async,
    workspace_of,
)

if TYPE_CHECKING:
    from gm_agent.events import Event
    from gm_agent.kernel import RunOutcome


@click.command()
@click.argument("task", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--model", "-m", help="provider:model, e.g. local:smollm2, openai:gpt-4.1, scripted:FILE."
)
@click.option(
    "--max-steps", type=click.IntRange(min=1), help="Step budget (default: task, gm.toml, 30)."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print each event as one JSON line as it is committed."
)
@click.option(
    "--watch",
    is_flag=True,
    help="After the run, run the task again whenever the files its `on: files` "
    "trigger names change (every file, without one); Ctrl-C stops.",
)
@click.option(
    "--tui",
    is_flag=True,
    help="Start the run in the background and watch and steer it in the TUI; "
    "closing the TUI leaves the run going.",
)
@click.option(
    "--run-id",
    metavar="ULID",
    help="The new run's id, chosen by the caller (a ULID not used yet); "
    "a script that starts a run in the background knows which it is.",
)
@approval_options
@click.pass_context
def run(
    ctx: click.Context,
    task: Path,
    model: str | None,
    max_steps: int | None,
    as_json: bool,
    watch: bool,
    tui: bool,
    run_id: str | None,
    yes: bool,
    no_input: bool,
    wait_for_approval: bool,
) -> None:
    """Run the task in TASK (a task.md file) to its end.

    Exit codes: 0 succeeded, 1 failed, 2 usage or input error, 3 waiting for a
    human, 130 interrupted (the run is paused).
    """
    from gm_agent.kernel import run_task

    observe = observer(as_json)
    workspace = workspace_of(ctx)
    approvals = approval_mode(yes, no_input, wait_for_approval)
    if watch and run_id:
        raise click.UsageError("--run-id names one run; --watch starts many")
    if tui:
        from gm_agent.cli._tui import run_in_tui

        options = [*(["--model", model] if model else []), *(["--yes"] if yes else [])]
        if max_steps:
            options += ["--max-steps", str(max_steps)]
        run_in_tui(workspace, task, options, run_id)
        return

    def announce(run_id: str) -> None:
        if not as_json:
            click.echo(
                f"gm: journaling to .gm/journal.db; watch with `gm log {run_id} --follow`", err=True
            )

    def once() -> RunOutcome:
        return run_async(
            lambda: run_task(
                task,
                workspace=workspace,
                environ=os.environ,
                model=model,
                max_steps=max_steps,
                observer=observe,
                on_created=announce,
                approvals=approvals,
                run_id=run_id,
            )
        )

    if not watch:
        exit_with(once())
    from gm_agent.triggers import next_change, watched_paths

    patterns, debounce_ms = run_async(lambda: _watched(task, watched_paths))
    while True:
        explain(once())
        click.echo(f"gm: watching {', '.join(patterns)} for changes; Ctrl-C stops", err=True)
        changed = run_async(lambda: next_change(workspace, patterns, os.environ, debounce_ms))
        click.echo(f"gm: changed: {', '.join(changed)}; running the task again", err=True)


async def _watched(
    task: Path, watched_paths: Callable[[Path], tuple[tuple[str, ...], int]]
) -> tuple[tuple[str, ...], int]:
    return watched_paths(task)


def _budget(ctx: click.Context, param: click.Parameter, items: tuple[str, ...]) -> dict[str, float]:
    """``--budget max_tool_calls=50 ...`` as ``{"max_tool_calls": 50}``, checked."""
    from gm_agent.settings import BudgetSettings

    limits: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in BudgetSettings.model_fields:
            known = ", ".join(BudgetSettings.model_fields)
            raise click.BadParameter(f"{item!r} is not KEY=VALUE with KEY one of {known}")
        try:
            limits[key] = float(value)
        except ValueError:
            raise click.BadParameter(f"{item!r}: {value!r} is not a number") from None
        if limits[key] != int(limits[key]) and key not in _FRACTIONAL:
            raise click.BadParameter(f"{item!r}: {key} is a whole number")
    return {k: (v if k in _FRACTIONAL else int(v)) for k, v in limits.items()}


_FRACTIONAL = ("max_wall_s", "max_cost_usd")


@click.command()
@click.argument("run_ref", metavar="[RUN]", required=False)
@click.option(
    "--all", "resume_all", is_flag=True, help="Resume every paused or orphaned run, oldest first."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print each event as one JSON line as it is committed."
)
@click.option("--max-steps", type=click.IntRange(min=1), help="Raise the run's step budget.")
@click.option(
    "--budget",
    "budget",
    multiple=True,
    callback=_budget,
    metavar="KEY=VALUE",
    help="Raise a limit: max_input_tokens, max_output_tokens, max_tool_calls, max_wall_s, max_cost_usd.",
)
@approval_options
@click.pass_context
def resume(
    ctx: click.Context,
    run_ref: str | None,
    resume_all: bool,
    as_json: bool,
    max_steps: int | None,
    budget: dict[str, float],
    yes: bool,
    no_input: bool,
    wait_for_approval: bool,
) -> None:
    """Continue RUN (default `last`) after an interrupt or a crash.

    Side effects recorded as done are never repeated: their results are served
    from the journal. A command cut off mid-way is reported to the model as
    "outcome unknown" (job.ambiguous). Exit codes as for `gm run`; 2 when
    another live process is executing the run.
    """
    from gm_agent.kernel import resumable_runs, resume_run

    if resume_all and run_ref:
        raise click.UsageError("give a RUN or --all, not both")
    if resume_all and (max_steps or budget):
        raise click.UsageError("raise a budget for one RUN, not with --all")
    workspace = workspace_of(ctx)
    observe = observer(as_json)
    mode = approval_mode(yes, no_input, wait_for_approval)
    if not resume_all:
        outcome = run_async(
            lambda: resume_run(
                run_ref or "last",
                workspace=workspace,
                environ=os.environ,
                observer=observe,
                approvals=mode,
                max_steps=max_steps,
                budget=budget,
            )
        )
        exit_with(outcome)
    run_ids = run_async(lambda: resumable_runs(workspace, os.environ))
    if not run_ids:
        click.echo("nothing to resume: no paused or orphaned runs", err=True)
    exit_code = 0
    for run_id in run_ids:
        outcome = run_async(
            lambda run_id=run_id: resume_run(
                run_id, workspace=workspace, environ=os.environ, observer=observe, approvals=mode
            )
        )
        exit_code = max(exit_code, outcome.exit_code)
    sys.exit(exit_code)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run and line.")
@click.pass_context
def runs(ctx: click.Context, as_json: bool) -> None:
    """List the workspace's runs, newest first; a child run under its parent."""
    from gm_agent._render import RUNS_HEADER, run_line, run_tree

    async def list_runs() -> list[Any]:
        async with await open_journal(workspace_of(ctx)) as journal:
            return await journal.list_runs()

    rows = run_async(list_runs)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row.model_dump(), ensure_ascii=False))
        return
    if not rows:
        click.echo("no runs yet; start one with `gm run TASK`")
        return
    click.echo(RUNS_HEADER)
    for branch, row in run_tree(rows):
        click.echo(run_line(row, branch))


@click.command()
@click.argument("run_ref", metavar="RUN")
@click.option(
    "--follow", "-f", is_flag=True, help="Keep printing new events until the run finishes."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event and line.")
@click.pass_context
def log(ctx: click.Context, run_ref: str, follow: bool, as_json: bool) -> None:
    """Print the events of RUN (an id, a unique prefix, or `last`), or of a
    trigger (`trigger:NAME`: its firings and refusals)."""
    from gm_agent._render import log_line

    def show(event: Event) -> None:
        click.echo(json_line(event) if as_json else log_line(event))

    async def print_log() -> None:
        async with await open_journal(workspace_of(ctx)) as journal:
            stream = run_ref.startswith("trigger:") or run_ref == "serve"
            run_id = run_ref if stream else await journal.resolve_run(run_ref)
            if stream and follow:
                raise click.UsageError("--follow is for runs; a trigger's log has no end")
            if follow:
                async for event in journal.follow(run_id):
                    show(event)
            else:
                for event in await journal.read(run_id):
                    show(event)

    run_async(print_log)


@click.command()
@click.argument("run_ref", metavar="[RUN]", default="last")
@click.pass_context
def status(ctx: click.Context, run_ref: str) -> None:
    """Show where RUN stands (default: the last run)."""
    from gm_agent._render import cost_text
    from gm_agent.kernel import load_state

    async def load() -> Any:
        async with await open_journal(workspace_of(ctx)) as journal:
            state, _ = await load_state(journal, await journal.resolve_run(run_ref))
            return state

    state = run_async(load)
    click.echo(f"run      {state.run_id}")
    click.echo(f"status   {state.status}")
    click.echo(f"model    {state.model}")
    if state.parent_id:
        click.echo(f"fork of  {state.parent_id} at seq {state.fork_seq}")
    click.echo(f"steps    {state.step} of {state.max_steps}")
    usage = state.usage
    cached = f" ({usage.cache_read_tokens} cached)" if usage.cache_read_tokens else ""
    reasoning = f" ({usage.reasoning_tokens} reasoning)" if usage.reasoning_tokens else ""
    click.echo(f"tokens   {usage.input_tokens} in{cached}, {usage.output_tokens} out{reasoning}")
    cost = cost_text(state.cost_usd, state.unpriced_steps, state.step)
    unpriced = f" ({state.unpriced_steps} responses had no price)" if state.unpriced_steps else ""
    click.echo(f"cost     {cost}{unpriced}")
    if state.sandbox:
        click.echo(f"sandbox  {state.sandbox}")
    if state.changed_files:
        click.echo(f"changed  {', '.join(state.changed_files)}")
    if state.summary:
        click.echo(f"summary  {state.summary}")
    if state.error:
        click.echo(f"error    {state.error}")
    task = state.task.strip().splitlines()
    click.echo(f"task     {task[0] if task else ''}")


@click.command()
@click.argument("run_ref", metavar="[RUN]", default="last")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "jsonl"]),
    default="md",
    show_default=True,
    help="A Markdown transcript, or every event as a JSON line.",
)
@click.pass_context
def export(ctx: click.Context, run_ref: str, fmt: str) -> None:
    """Print RUN (default `last`) as a readable transcript or as JSON lines."""
    from gm_agent._export import markdown_transcript
    from gm_agent.kernel import history

    async def load() -> list[Any]:
        async with await open_journal(workspace_of(ctx)) as journal:
            return await history(journal, await journal.resolve_run(run_ref))

    events = run_async(load)
    if fmt == "jsonl":
        for event in events:
            click.echo(json_line(event))
    else:
        click.echo(markdown_transcript(events), nl=False)


@click.command()
@click.pass_context
def doctor(ctx: click.Context) -> None:
    """What works here: the shell sandbox, the journal, the default model.

    Writes nothing. Exit 1 when something needed does not work.
    """
    from gm_agent._doctor import diagnose

    checks = run_async(lambda: diagnose(workspace_of(ctx), os.environ))
    marks = {"ok": "✓", "warn": "!", "fail": "✗"}
    for check in checks:
        click.echo(f"{marks[check.status]} {check.name:<8} {check.detail}")
    sys.exit(1 if any(c.status == "fail" for c in checks) else 0)
