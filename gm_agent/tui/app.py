"""``gm tui``: a Textual window onto the journal: watch, steer, approve and undo runs.

Two screens: the runs list (every run of the workspace, live) and a run's view
(its conversation as it is journaled, an approval bar when a call waits, a
message box, and a status line). Keys act through :mod:`gm_agent.tui._actions`,
the CLI's own functions, so every key is a journaled command; ``?`` lists them
and ``ctrl+p`` opens the command palette. The TUI holds no lease: closing it,
or its crash, never affects a run.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import ClassVar, cast

import anyio
from rich.syntax import Syntax
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Header, Input, Label, RichLog, Static

from gm_agent.clock import Clock, SystemClock
from gm_agent.errors import GmAgentError
from gm_agent.events import PatchApplied
from gm_agent.tui import _actions
from gm_agent.tui._feed import POLL_S, Feed, RunFeed
from gm_agent.tui._view import event_text, run_cells, status_line

__all__ = ["GmApp"]

FIRST_EVENTS = 2_000
"""Events of a run's history drawn when its view opens (the newest)."""

MAX_LINES = 10_000
"""Conversation lines a run view keeps (the oldest scroll away; `gm log` has all)."""

COLUMNS = ("run", "status", "task", "model", "steps", "tokens", "cost", "age", "fork of")


class Confirm(ModalScreen[bool]):
    """Ask yes or no (``y`` / ``n``) before an action that cannot be taken back."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Label(self.question)
            yield Label("[b]y[/b] yes   [b]n[/b] no")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class Help(ModalScreen[None]):
    """Every key binding of the screen it was opened from."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, bindings: list[tuple[str, str]]) -> None:
        super().__init__()
        self.lines = bindings

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Label("[b]Keys[/b]")
            for key, description in self.lines:
                yield Label(f"[b]{key:>10}[/b]  {description}")
            yield Label("ctrl+p  command palette · escape closes this")

    def action_close(self) -> None:
        self.dismiss()


class _Screen(Screen[None]):
    @property
    def gm(self) -> GmApp:
        app = self.app  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        assert isinstance(app, GmApp)
        return app

    def action_help(self) -> None:
        shown = [(b.key, b.description) for b in self._bindings_list() if b.description]
        self.gm.push_screen(Help(shown))

    def _bindings_list(self) -> list[Binding]:
        return [b for b in self.BINDINGS if isinstance(b, Binding)]


class RunsScreen(_Screen):
    """Every run of the workspace, newest first, refreshed as the journal grows."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open run"),
        Binding("slash", "filter", "Filter"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "app.quit", "Quit"),
    ]

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield Input(placeholder="filter: status, task or model", id="filter")
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        table = self._table()
        table.add_columns(*COLUMNS)
        table.focus()
        self.refresh_runs()
        self.set_interval(POLL_S * 5, self.refresh_runs)

    @work(exclusive=True, group="runs", exit_on_error=False)
    async def refresh_runs(self) -> None:
        rows = await self.gm.feed.runs()
        wanted = self.query_one("#filter", Input).value.strip().lower()
        now = self.gm.clock.now()
        table = self._table()
        selected = self._selected()
        table.clear()
        for row in rows:
            cells = run_cells(row, now)
            if wanted and wanted not in " ".join((row.status, row.task, row.model)).lower():
                continue
            table.add_row(*(Text(c) for c in cells), key=row.run_id)  # text, never markup
        if selected is not None and selected in table.rows:  # still shown after the filter
            table.move_cursor(row=table.get_row_index(selected))

    def _table(self) -> DataTable[Text]:
        return cast("DataTable[Text]", self.query_one("#runs", DataTable))

    def _selected(self) -> str | None:
        table = self._table()
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return str(key.value)

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.gm.push_screen(RunScreen(str(event.row_key.value)))

    def action_open(self) -> None:
        if (run_id := self._selected()) is not None:
            self.gm.push_screen(RunScreen(run_id))

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    @on(Input.Submitted, "#filter")
    def _filtered(self) -> None:
        self.refresh_runs()
        self._table().focus()


class RunScreen(_Screen):
    """One run: its conversation as it streams into the journal, and its controls."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "approve(False)", "Approve"),
        Binding("A", "approve(True)", "Always"),
        Binding("d", "deny", "Deny"),
        Binding("m", "message(False)", "Message"),
        Binding("M", "message(True)", "Preempt"),
        Binding("escape", "interrupt", "Interrupt"),
        Binding("r", "resume", "Resume"),
        Binding("c", "cancel", "Cancel"),
        Binding("u", "undo", "Undo"),
        Binding("f", "fork", "Fork at end"),
        Binding("b,backspace", "back", "Back"),
        Binding("question_mark", "help", "Help"),
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run = RunFeed(run_id)
        self._preempt = False
        self._following = False
        self._mode = "message"

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield Static(id="status")
        yield RichLog(
            id="log",
            wrap=True,
            markup=False,
            highlight=False,
            auto_scroll=True,
            max_lines=MAX_LINES,
        )
        yield Static(id="streaming")
        with Horizontal(id="approval"):
            yield Static(id="asking")
        yield Input(placeholder="message to the run (enter sends)", id="message")
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"run {self.run.run_id}"
        self.query_one("#message", Input).display = False
        self.follow()
        self.set_interval(POLL_S, self.follow)

    @work(group="follow", exit_on_error=False)
    async def follow(self) -> None:
        """Show the run's new events, and where it stands."""
        if self._following:  # the previous look is still drawing: skip this tick
            return
        self._following = True
        try:
            await self._follow()
        finally:
            self._following = False

    async def _follow(self) -> None:
        log = self.query_one("#log", RichLog)
        first = self.run.count == 0
        new, total = await self.gm.feed.catch_up(self.run, keep=FIRST_EVENTS if first else None)
        if total > len(new):  # a long run opened: its end, and where the rest is
            log.write(
                Text(
                    f"… {total - len(new):,} earlier events: `gm log {self.run.run_id}`",
                    style="dim",
                )
            )
        for event in new:
            if (line := event_text(event)) is not None:
                log.write(line)
            if isinstance(event.data, PatchApplied):  # the change itself, highlighted
                diff = await self.gm.feed.diff(event.data.files)
                log.write(Syntax(diff, "diff", theme="ansi_dark", background_color="default"))
        row = await self.gm.feed.journal.get_run(self.run.run_id)
        live = row.lease_owner is not None and not row.orphaned  # not a killed process's file
        streaming = self.gm.feed.streaming(self.run.run_id) if live else None
        shown = self.query_one("#streaming", Static)
        shown.display = streaming is not None
        if streaming is not None:  # the reply as it comes; the log gets it once journaled
            shown.update(Text("▍ " + streaming, style="italic"))
        state = self.run.state
        self.query_one("#status", Static).update(Text(status_line(state, self.gm.clock.now())))
        pending = state.pending_approval()
        bar = self.query_one("#approval", Horizontal)
        bar.display = pending is not None
        if pending is not None:
            self.query_one("#asking", Static).update(
                Text.assemble(
                    (pending.name, "bold"),
                    f" waits: {pending.reason}  — ",  # plain text: a reason may hold brackets
                    ("a", "bold"),
                    " approve · ",
                    ("A", "bold"),
                    " always · ",
                    ("d", "bold"),
                    " deny",
                )
            )

    def _act(self, what: Callable[[], Awaitable[str]]) -> None:
        self.gm.act(what)

    def action_approve(self, always: bool) -> None:
        self._act(
            lambda: _actions.approve(self.gm.workspace, self.run.run_id, self.gm.environ, always)
        )

    def action_deny(self) -> None:
        box = self.query_one("#message", Input)
        box.placeholder = "why not (enter denies; the model is told)"
        box.display = True
        box.focus()
        self._mode = "deny"

    def action_message(self, preempt: bool) -> None:
        box = self.query_one("#message", Input)
        box.placeholder = (
            "message, cuts in now (enter sends)" if preempt else "message (enter sends)"
        )
        box.display = True
        box.focus()
        self._preempt = preempt
        self._mode = "message"

    @on(Input.Submitted, "#message")
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value
        box = self.query_one("#message", Input)
        box.value = ""
        box.display = False
        run_id, workspace, environ = self.run.run_id, self.gm.workspace, self.gm.environ
        if self._mode == "deny":
            self._act(lambda: _actions.deny(workspace, run_id, environ, text))
        elif text.strip():
            preempt = self._preempt
            self._act(lambda: _actions.send(workspace, run_id, environ, text, preempt))

    def action_interrupt(self) -> None:
        box = self.query_one("#message", Input)
        if box.display:  # escape closes the message box first, and forgets its text
            box.display = False
            box.value = ""
            return
        self._act(lambda: _actions.interrupt(self.gm.workspace, self.run.run_id, self.gm.environ))

    def action_resume(self) -> None:
        self._act(lambda: _actions.resume(self.gm.workspace, self.run.run_id))

    def action_cancel(self) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._act(
                    lambda: _actions.cancel(self.gm.workspace, self.run.run_id, self.gm.environ)
                )

        self.gm.push_screen(
            Confirm(f"Cancel run {self.run.run_id}? It cannot be resumed."), answered
        )

    def action_undo(self) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._act(
                    lambda: _actions.undo(self.gm.workspace, self.run.run_id, self.gm.environ)
                )

        self.gm.push_screen(Confirm("Undo every change this run made?"), answered)

    def action_fork(self) -> None:
        seq = self.run.last_seq
        self._act(lambda: _actions.fork(self.gm.workspace, self.run.run_id, seq))

    def action_back(self) -> None:
        self.gm.pop_screen()


class GmApp(App[None]):
    """The TUI over ``workspace``'s journal.

    Args:
        workspace: the project directory.
        environ: what the actions see (settings, secrets to redact).
        run_id: open this run's view first (``gm run --tui``, ``gm tui RUN``).
        clock: for ages and elapsed times (tests pin it).
    """

    TITLE = "gm"
    CSS = """
    #status { height: 1; background: $boost; padding: 0 1; }
    #approval { height: auto; background: $warning 30%; padding: 0 1; }
    #streaming { height: auto; max-height: 8; padding: 0 1; color: $text-muted; }
    #confirm, #help { width: auto; height: auto; padding: 1 2; background: $panel;
                      border: round $accent; }
    Confirm, Help { align: center middle; }
    """

    def __init__(
        self,
        workspace: Path,
        environ: Mapping[str, str] | None = None,
        *,
        run_id: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__()
        self.workspace = workspace
        self.environ = dict(os.environ if environ is None else environ)
        self.clock = clock or SystemClock()
        self.first_run = run_id
        self._feed: Feed | None = None

    @property
    def feed(self) -> Feed:
        """The journal, open for reading."""
        assert self._feed is not None
        return self._feed

    async def on_mount(self) -> None:
        self._feed = await Feed.open(self.workspace)
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
