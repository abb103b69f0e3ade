"""``gm tui``: a Textual window onto the journal: watch, steer, approve and undo runs.

Two screens: the runs list (:mod:`~gm_agent.tui._runs_screen`: every run of the
workspace, live) and a run's view (:mod:`~gm_agent.tui._run_screen`: its
conversation as it is journaled, its events, jobs and patches, an approval bar
when a call waits, a message box, and a status line). Keys act through
:mod:`gm_agent.tui._actions`, the CLI's own functions, so every key is a
journaled command; ``?`` lists them and ``ctrl+p`` opens the command palette.
The TUI holds no lease: closing it, or its crash, never affects a run.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path

import anyio
from textual.app import App

from gm_agent.clock import Clock, SystemClock
from gm_agent.errors import GmAgentError
from gm_agent.tui._feed import Feed
from gm_agent.tui._run_screen import RunScreen
from gm_agent.tui._runs_screen import RunsScreen
from gm_agent.tui._spawn import Children

__all__ = ["GmApp", "RunScreen", "RunsScreen"]

REAP_S = 0.5
"""How often the TUI collects the ``gm`` processes it started, in seconds."""


class GmApp(App[None]):
    """The TUI over ``workspace``'s journal.

    Args:
        workspace: the project directory.
        environ: what the actions and the processes they start see (settings,
            API keys, secrets to redact); the process's environment by default.
        run_id: open this run's view first (``gm run --tui``, ``gm tui RUN``).
        clock: for ages, elapsed times and log names (tests pin it).
        processes: the ``gm`` processes already started for this TUI (``gm run --tui``).
    """

    TITLE = "gm"
    CSS = """
    #status { height: auto; max-height: 2; background: $boost; padding: 0 1; }
    #approval { height: auto; background: $warning 30%; padding: 0 1; }
    #streaming { height: auto; max-height: 8; padding: 0 1; color: $text-muted; }
    #tabs { height: 1fr; }
    TabPane { padding: 0; }
    #log { height: 1fr; }
    #confirm, #help { width: auto; height: auto; max-height: 100%; padding: 0 2;
                      background: $panel; border: round $accent; }
    Confirm, Help { align: center middle; }
    """

    def __init__(
        self,
        workspace: Path,
        environ: Mapping[str, str] | None = None,
        *,
        run_id: str | None = None,
        clock: Clock | None = None,
        processes: Children | None = None,
    ) -> None:
        super().__init__()
        self.workspace = workspace
        self.environ = dict(os.environ if environ is None else environ)
        self.clock = clock or SystemClock()
        self.processes = processes or Children(workspace, self.environ)
        self.first_run = run_id
        self._feed: Feed | None = None

    @property
    def feed(self) -> Feed:
        """The journal, open for reading."""
        assert self._feed is not None
        return self._feed

    async def on_mount(self) -> None:
        self._feed = await Feed.open(self.workspace)
        self.set_interval(REAP_S, self.reap)
        await self.push_screen(RunsScreen())
        if self.first_run is not None:
            try:
                run_id = await self.feed.journal.resolve_run(self.first_run)
            except GmAgentError as exc:  # stay on the runs list, and say why
                self.notify(str(exc), severity="error", markup=False)
                return
            await self.push_screen(RunScreen(run_id))

    async def on_unmount(self) -> None:
        if self._feed is not None:
            await self._feed.close()

    def reap(self) -> None:
        """Collect the ``gm`` processes that ended; say which failed, and why."""
        for child in self.processes.reap():
            code = child.process.returncode
            said = f"{child.what} exited with {code}: {child.gist() or 'no output'}"
            self.notify(said, severity="error", timeout=10, markup=False)

    def act(self, what: Callable[[], Awaitable[str]]) -> None:
        """Run an action in the background and say how it went."""

        async def run() -> None:
            said = ""
            try:
                # Shielded: quitting waits for it, so an undo or a cancel is never
                # cut between changing files and journaling it.
                with anyio.CancelScope(shield=True):
                    said = await what()
                self.notify(said, markup=False)
            except (GmAgentError, OSError) as exc:
                self.notify(str(exc), severity="error", timeout=8, markup=False)

        self.run_worker(run(), group="actions", exit_on_error=False)

    def now(self) -> datetime:
        """The clock's time (tests pin it)."""
        return self.clock.now()
