"""What every ``gm`` command shares: the workspace, running a coroutine, the journal."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable, Generator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

if TYPE_CHECKING:
    from gm_agent.events import Event
    from gm_agent.journal import Journal
    from gm_agent.kernel import ApprovalMode, RunOutcome
    from gm_agent.llm import Delta

T = TypeVar("T")

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def workspace_of(ctx: click.Context) -> Path:
    return Path(ctx.obj["workspace"]).resolve()


@contextmanager
def exits_on_errors() -> Generator[None]:
    """Turn gm_agent errors raised inside into ``gm: MESSAGE`` on stderr and an
    exit code: 2 for a :class:`~gm_agent.errors.UserError`, 1 for any other
    :class:`~gm_agent.errors.GmAgentError`, 130 for Ctrl-C."""
    from gm_agent.errors import GmAgentError, UserError

    try:
        yield
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


def run_async(function: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine function; gm_agent errors become a message and an exit
    code (:func:`exits_on_errors`)."""
    import anyio

    with exits_on_errors():
        return anyio.run(function)
    raise AssertionError("unreachable")  # pragma: no cover (for the type checker)


async def open_journal(workspace: Path) -> Journal:
    """The workspace's journal, opened read-only."""
    from gm_agent.journal import Journal
    from gm_agent.settings import load_settings

    settings = load_settings(workspace, os.environ)
    return await Journal.open(settings.journal_path, read_only=True)


def json_line(event: Event) -> str:
    """``event`` as one compact JSON line (what ``--json`` prints)."""
    return json.dumps(event.to_record(), ensure_ascii=False, separators=(",", ":"))


def observer(as_json: bool) -> Callable[[Event | Delta], None]:
    """Print each committed event (a JSON line, or a progress line when it has one)
    and, in human output, the model's text as it streams."""
    from gm_agent._render import progress_line
    from gm_agent.llm import Delta

    streaming = False  # a streamed line is open: end it before the next line

    def observe(item: Event | Delta) -> None:
        nonlocal streaming
        if isinstance(item, Delta):
            if item.text and not as_json:
                click.echo(item.text if streaming else f"  {item.text}", nl=False)
                streaming = True
            return
        if as_json:
            click.echo(json_line(item))
            return
        line = progress_line(item)
        if line is not None:
            if streaming:
                click.echo()
                streaming = False
            click.echo(line)

    return observe


F = TypeVar("F", bound=Callable[..., object])


def approval_options(command: F) -> F:
    """``--yes``, ``--no-input`` and ``--wait-for-approval``, for the commands that
    execute a run."""
    command = click.option(
        "--wait-for-approval",
        is_flag=True,
        help="Wait for `gm approve` (or the TUI) even when stdin is not a terminal.",
    )(command)
    command = click.option(
        "--no-input",
        is_flag=True,
        help="Unattended: a call that needs approval stops the run (exit code 3) "
        "instead of waiting for `gm approve` (the default when stdin is not a terminal).",
    )(command)
    return click.option(
        "--yes", "-y", is_flag=True, help="Approve every call that asks; deny rules still deny."
    )(command)


def approval_mode(yes: bool, no_input: bool, wait: bool = False) -> ApprovalMode:
    """``yes``; ``wait`` with ``--wait-for-approval``; ``stop`` when unattended
    (``--no-input``, or stdin is not a terminal); else ``wait`` for an answer from
    another terminal.

    Raises:
        click.UsageError: ``--no-input`` and ``--wait-for-approval`` together.
    """
    if no_input and wait:
        raise click.UsageError(
            "--no-input stops at the first approval and --wait-for-approval waits for it: "
            "choose one"
        )
    if yes:
        return "yes"
    if wait:
        return "wait"
    if no_input or not sys.stdin.isatty():
        return "stop"
    return "wait"


def exit_with(outcome: RunOutcome) -> None:
    """Exit with the outcome's code, saying first what a run left waiting needs."""
    explain(outcome)
    sys.exit(outcome.exit_code)


def explain(outcome: RunOutcome) -> None:
    """Say what a run left waiting needs (nothing for other outcomes)."""
    run = outcome.run_id
    if outcome.status == "waiting" and outcome.needs and outcome.needs.startswith("approval"):
        click.echo(
            f"gm: run {run} needs {outcome.needs}. Answer with `gm approve {run}` "
            f"or `gm deny {run} --reason ...`, then `gm resume {run}`",
            err=True,
        )
    elif outcome.status == "waiting" and outcome.needs:
        click.echo(f"gm: run {run} is waiting: {outcome.needs}", err=True)
