"""The ``gm`` command. Thin: parse, call one library function, render.

Heavy modules (pydantic, aiosqlite, httpx, llama.cpp) are imported inside the
commands, so ``gm --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from gm_agent import __version__

if TYPE_CHECKING:
    from gm_agent.events import Event
    from gm_agent.journal import Journal

T = TypeVar("T")

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _workspace(ctx: click.Context) -> Path:
    return Path(ctx.obj["workspace"]).resolve()


def _run_async(function: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine function; turn gm_agent errors into a message and an exit code."""
    import anyio

    from gm_agent.errors import GmAgentError, UserError

    try:
        return anyio.run(function)
    except UserError as exc:
        click.echo(f"gm: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except GmAgentError as exc:
        click.echo(f"gm: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo(
            "gm: interrupted; everything so far is in the journal (continue with `gm resume`)",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)


async def _open_journal(workspace: Path) -> Journal:
    from gm_agent.journal import Journal
    from gm_agent.settings import load_settings

    settings = load_settings(workspace, os.environ)
    return await Journal.open(settings.journal_path, read_only=True)


def _json_line(event: Event) -> str:
    return json.dumps(event.to_record(), ensure_ascii=False, separators=(",", ":"))


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


@main.command()
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
@click.pass_context
def run(
    ctx: click.Context, task: Path, model: str | None, max_steps: int | None, as_json: bool
) -> None:
    """Run the task in TASK (a task.md file) to its end.

    Exit codes: 0 succeeded, 1 failed, 2 usage or input error, 3 waiting for a
    human, 130 interrupted (the run is paused).
    """
    from gm_agent.kernel import run_task

    observe = _observer(as_json)

    def announce(run_id: str) -> None:
        if not as_json:
            click.echo(
                f"gm: journaling to .gm/journal.db; watch with `gm log {run_id} --follow`", err=True
            )

    outcome = _run_async(
        lambda: run_task(
            task,
            workspace=_workspace(ctx),
            environ=os.environ,
            model=model,
            max_steps=max_steps,
            observer=observe,
            on_created=announce,
        )
    )
    sys.exit(outcome.exit_code)


@main.command()
@click.argument("run_ref", metavar="[RUN]", required=False)
@click.option(
    "--all", "resume_all", is_flag=True, help="Resume every paused or orphaned run, oldest first."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print each event as one JSON line as it is committed."
)
@click.pass_context
def resume(ctx: click.Context, run_ref: str | None, resume_all: bool, as_json: bool) -> None:
    """Continue RUN (default `last`) after an interrupt or a crash.

    Side effects recorded as done are never repeated: their results are served
    from the journal. A command cut off mid-way is reported to the model as
    "outcome unknown" (job.ambiguous). Exit codes as for `gm run`; 2 when
    another live process is executing the run.
    """
    from gm_agent.kernel import resumable_runs, resume_run

    if resume_all and run_ref:
        raise click.UsageError("give a RUN or --all, not both")
    workspace = _workspace(ctx)
    observe = _observer(as_json)
    if not resume_all:
        outcome = _run_async(
            lambda: resume_run(
                run_ref or "last", workspace=workspace, environ=os.environ, observer=observe
            )
        )
        sys.exit(outcome.exit_code)
    run_ids = _run_async(lambda: resumable_runs(workspace, os.environ))
    if not run_ids:
        click.echo("nothing to resume: no paused or orphaned runs", err=True)
    exit_code = 0
    for run_id in run_ids:
        outcome = _run_async(
            lambda run_id=run_id: resume_run(
                run_id, workspace=workspace, environ=os.environ, observer=observe
            )
        )
        exit_code = max(exit_code, outcome.exit_code)
    sys.exit(exit_code)


def _observer(as_json: bool) -> Callable[[Event], None]:
    from gm_agent._render import progress_line

    def observe(event: Event) -> None:
        if as_json:
            click.echo(_json_line(event))
            return
        line = progress_line(event)
        if line is not None:
            click.echo(line)

    return observe


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run and line.")
@click.pass_context
def runs(ctx: click.Context, as_json: bool) -> None:
    """List the workspace's runs, newest first."""
    from gm_agent._render import RUNS_HEADER, run_line

    async def list_runs() -> list[Any]:
        async with await _open_journal(_workspace(ctx)) as journal:
            return await journal.list_runs()

    rows = _run_async(list_runs)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row.model_dump(), ensure_ascii=False))
        return
    if not rows:
        click.echo("no runs yet; start one with `gm run TASK`")
        return
    click.echo(RUNS_HEADER)
    for row in rows:
        click.echo(run_line(row))


@main.command()
@click.argument("run_ref", metavar="RUN")
@click.option(
    "--follow", "-f", is_flag=True, help="Keep printing new events until the run finishes."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event and line.")
@click.pass_context
def log(ctx: click.Context, run_ref: str, follow: bool, as_json: bool) -> None:
    """Print the events of RUN (an id, a unique prefix, or `last`)."""
    from gm_agent._render import log_line

    def show(event: Event) -> None:
        click.echo(_json_line(event) if as_json else log_line(event))

    async def print_log() -> None:
        async with await _open_journal(_workspace(ctx)) as journal:
            run_id = await journal.resolve_run(run_ref)
            if follow:
                async for event in journal.follow(run_id):
                    show(event)
            else:
                for event in await journal.read(run_id):
                    show(event)

    _run_async(print_log)


@main.command()
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

    async def load() -> list[Any]:
        async with await _open_journal(_workspace(ctx)) as journal:
            return await journal.read(await journal.resolve_run(run_ref))

    events = _run_async(load)
    if fmt == "jsonl":
        for event in events:
            click.echo(_json_line(event))
    else:
        click.echo(markdown_transcript(events), nl=False)


@main.command()
@click.argument("run_ref", metavar="[RUN]", default="last")
@click.option("--stat", is_flag=True, help="Only a line per file with added and removed lines.")
@click.pass_context
def diff(ctx: click.Context, run_ref: str, stat: bool) -> None:
    """Show the net change RUN (default `last`) made to the workspace."""
    from gm_agent.kernel import run_diff

    diffs = _run_async(lambda: run_diff(_workspace(ctx), run_ref, os.environ))
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


@main.command()
@click.argument("run_ref", metavar="[RUN]", default="last")
@click.option("--to", "to_seq", type=int, help="Only revert patches applied after this seq.")
@click.option("--force", is_flag=True, help="Overwrite files edited since the run changed them.")
@click.pass_context
def undo(ctx: click.Context, run_ref: str, to_seq: int | None, force: bool) -> None:
    """Revert the changes RUN (default `last`) made, newest first, byte for byte.

    Refuses, naming the files and touching nothing, when a file was edited after
    the run changed it, unless --force. `gm redo` re-applies what this reverted.
    """
    from gm_agent.kernel import undo_run

    report = _run_async(
        lambda: undo_run(_workspace(ctx), run_ref, os.environ, to_seq=to_seq, force=force)
    )
    click.echo(
        f"reverted {len(report.patches)} patches of run {report.run_id}: {', '.join(report.files)}"
    )


@main.command()
@click.argument("run_ref", metavar="[RUN]", default="last")
@click.option("--force", is_flag=True, help="Overwrite files edited since the undo.")
@click.pass_context
def redo(ctx: click.Context, run_ref: str, force: bool) -> None:
    """Re-apply what the latest `gm undo` of RUN (default `last`) reverted."""
    from gm_agent.kernel import redo_run

    report = _run_async(lambda: redo_run(_workspace(ctx), run_ref, os.environ, force=force))
    click.echo(
        f"re-applied {len(report.patches)} patches of run {report.run_id}: {', '.join(report.files)}"
    )


@main.command()
@click.argument("run_ref", metavar="[RUN]", default="last")
@click.pass_context
def status(ctx: click.Context, run_ref: str) -> None:
    """Show where RUN stands (default: the last run)."""
    from gm_agent.kernel import fold

    async def load() -> Any:
        async with await _open_journal(_workspace(ctx)) as journal:
            run_id = await journal.resolve_run(run_ref)
            return fold(await journal.read(run_id))

    state = _run_async(load)
    click.echo(f"run      {state.run_id}")
    click.echo(f"status   {state.status}")
    click.echo(f"model    {state.model}")
    click.echo(f"steps    {state.step} of {state.max_steps}")
    click.echo(f"tokens   {state.usage.input_tokens} in, {state.usage.output_tokens} out")
    if state.changed_files:
        click.echo(f"changed  {', '.join(state.changed_files)}")
    if state.summary:
        click.echo(f"summary  {state.summary}")
    if state.error:
        click.echo(f"error    {state.error}")
    task = state.task.strip().splitlines()
    click.echo(f"task     {task[0] if task else ''}")
