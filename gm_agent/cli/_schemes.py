"""``gm scheme list``, ``gm scheme validate`` and ``gm scheme run``: the strict
procedures a workspace has, and running one."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import click

from gm_agent.cli._support import (
    approval_mode,
    approval_options,
    exit_with,
    exits_on_errors,
    observer,
    run_async,
    workspace_of,
)

if TYPE_CHECKING:
    from gm_agent.schemes import SchemeEntry

T = TypeVar("T")


def _or_exit(function: Callable[[], T]) -> T:
    """``function()``; a gm_agent error is printed as ``gm: ...`` with its exit
    code (:func:`~gm_agent.cli._support.exits_on_errors`)."""
    with exits_on_errors():
        return function()
    raise AssertionError("unreachable")  # pragma: no cover (for the type checker)


@click.group()
def scheme() -> None:
    """Schemes: strict procedures in YAML (.gm/schemes/NAME.yaml, and gm's own)."""


@scheme.command("list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """List the schemes: name, where from (project or shipped), description.

    A file that cannot be used is reported on stderr; the others are listed.
    """
    from gm_agent.schemes import list_schemes

    entries: list[SchemeEntry] = _or_exit(lambda: list_schemes(workspace_of(ctx)))
    usable = [entry for entry in entries if entry.problem is None]
    for entry in entries:
        if entry.problem is not None:
            click.echo(f"gm: {entry.problem}", err=True)
    if not usable:
        click.echo("no schemes; write one in .gm/schemes/NAME.yaml (see docs/schemes.md)")
    width = max((len(entry.name) for entry in usable), default=0)
    for entry in usable:
        click.echo(f"{entry.name:<{width}}  {entry.source:<7}  {entry.description}")


@scheme.command()
@click.argument("name_or_path", metavar="FILE_OR_NAME")
@click.pass_context
def validate(ctx: click.Context, name_or_path: str) -> None:
    """Check the scheme FILE_OR_NAME (a .yaml path, or a scheme's name).

    Checks the file, its DAG and templates, the tools its steps name and their
    arguments, and the schemes it calls (they exist, no cycle, their
    parameters fit). Prints its steps in levels (a level's steps may run
    together); exit 2 with the file, line and what to fix when it is invalid.
    """
    from gm_agent.schemes import check_scheme, find_scheme, topological_order
    from gm_agent.tools import builtin_tools

    def check() -> tuple[str, int, list[list[str]]]:
        workspace = workspace_of(ctx)
        found = find_scheme(workspace, name_or_path)
        check_scheme(workspace, found, builtin_tools().args_models())
        return found.name, len(found.steps), topological_order(found)

    name, count, levels = _or_exit(check)
    shown = ", ".join(f"[{', '.join(level)}]" for level in levels)
    click.echo(f"ok: {name} ({count} step{'' if count == 1 else 's'}, levels: {shown})")


def _params(ctx: click.Context, param: click.Parameter, items: tuple[str, ...]) -> dict[str, str]:
    """``-p key=value ...`` as ``{"key": "value"}`` (converted by the scheme's types later)."""
    given: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE")
        given[key] = value
    return given


@scheme.command("run")
@click.argument("name_or_path", metavar="FILE_OR_NAME")
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    callback=_params,
    metavar="KEY=VALUE",
    help="A parameter of the scheme (repeat for each); converted to its declared type.",
)
@click.option(
    "--model",
    "-m",
    help="provider:model for llm and agent steps and a fallback (default: gm.toml).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print each event as one JSON line as it is committed."
)
@approval_options
@click.pass_context
def run(
    ctx: click.Context,
    name_or_path: str,
    params: dict[str, str],
    model: str | None,
    as_json: bool,
    yes: bool,
    no_input: bool,
    wait_for_approval: bool,
) -> None:
    """Run the scheme FILE_OR_NAME durably, as a journaled run.

    Each step is a job: `gm resume RUN` after a crash or a block serves the steps
    already done and never runs them again. Exit codes: 0 succeeded, 1 failed,
    2 usage or input error, 3 waiting for a human (a blocked step, an approval),
    130 interrupted.
    """
    from gm_agent.kernel import run_scheme

    def announce(run_id: str) -> None:
        if not as_json:
            click.echo(
                f"gm: journaling to .gm/journal.db; watch with `gm log {run_id} --follow`", err=True
            )

    outcome = run_async(
        lambda: run_scheme(
            name_or_path,
            workspace=workspace_of(ctx),
            environ=os.environ,
            params=params,
            model=model,
            observer=observer(as_json),
            on_created=announce,
            approvals=approval_mode(yes, no_input, wait_for_approval),
        )
    )
    exit_with(outcome)
