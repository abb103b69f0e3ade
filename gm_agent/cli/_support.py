"""What every ``gm`` command shares: the workspace, running a coroutine, the journal."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

if TYPE_CHECKING:
    from gm_agent.events import Event
    from gm_agent.journal import Journal

T = TypeVar("T")

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def workspace_of(ctx: click.Context) -> Path:
    return Path(ctx.obj["workspace"]).resolve()


def run_async(function: Callable[[], Awaitable[T]]) -> T:
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


async def open_journal(workspace: Path) -> Journal:
    """The workspace's journal, opened read-only."""
    from gm_agent.journal import Journal
    from gm_agent.settings import load_settings

    settings = load_settings(workspace, os.environ)
    return await Journal.open(settings.journal_path, read_only=True)


def json_line(event: Event) -> str:
    """``event`` as one compact JSON line (what ``--json`` prints)."""
    return json.dumps(event.to_record(), ensure_ascii=False, separators=(",", ":"))


def observer(as_json: bool) -> Callable[[Event], None]:
    """Print each committed event: a JSON line, or a progress line when it has one."""
    from gm_agent._render import progress_line

    def observe(event: Event) -> None:
        if as_json:
            click.echo(json_line(event))
            return
        line = progress_line(event)
        if line is not None:
            click.echo(line)

    return observe
