"""One run's view: its conversation as it streams, its events, jobs and patches,
and the keys that steer it (each a journaled command, as the CLI's)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

from rich.syntax import Syntax
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Footer, Header, Input, RichLog, Static, TabbedContent, TabPane

from gm_agent.events import Event, PatchApplied
from gm_agent.kernel.state import ApprovalView
from gm_agent.tui import _actions
from gm_agent.tui._feed import POLL_S, RunFeed
from gm_agent.tui._modals import Confirm
from gm_agent.tui._screen import GmScreen
from gm_agent.tui._tabs import EventsTable, JobsTable, PatchesTable
from gm_agent.tui._view import event_text, status_line

__all__ = ["FIRST_EVENTS", "MAX_LINES", "RunScreen"]

FIRST_EVENTS = 2_000
"""Events of a run's history drawn when its view opens (the newest)."""

MAX_LINES = 10_000
"""Conversation lines a run view keeps (the oldest scroll away; `gm log` has all)."""

TABS = ("conversation", "events", "jobs", "patches")


class RunScreen(GmScreen):
    """One run: its conversation as it streams into the journal, and its controls."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "approve(False)", "Approve"),
        Binding("A", "approve(True)", "Always", show=False),
        Binding("d", "deny", "Deny"),
        Binding("m", "message(False)", "Message"),
        Binding("M", "message(True)", "Preempt", show=False),
        Binding("escape", "interrupt", "Interrupt"),
        Binding("r", "resume", "Resume", show=False),
        Binding("c", "cancel", "Cancel"),
        Binding("u", "undo", "Undo"),
        Binding("f", "fork", "Fork", show=False),
        Binding("1", "tab('conversation')", "Conversation", show=False),
        Binding("2", "tab('events')", "Events", show=False),
        Binding("3", "tab('jobs')", "Jobs", show=False),
        Binding("4", "tab('patches')", "Patches", show=False),
        Binding("b,backspace", "back", "Back", show=False),
        Binding("question_mark", "help", "Help"),
    ]
    DESCRIPTIONS: ClassVar[dict[str, str]] = {  # each fits an 80-column help screen
        "approve(True)": "Always: approve this call and its kind for the run",
        "deny": "Deny the waiting call; type why (the model is told)",
        "message(False)": "Message the run (read after the current step)",
        "message(True)": "Preempt: a message that cuts in now",
        "interrupt": "Interrupt: pause at the next safe point (r resumes)",
        "resume": "Resume a paused, waiting or orphaned run",
        "cancel": "Cancel the run, after asking (it cannot resume)",
        "undo": "Undo the run's changes (patches tab: the selected one)",
        "fork": "Fork at the end (events tab: at the selected event)",
    }

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run = RunFeed(run_id)
        self._preempt = False
        self._following = False
        self._mode = "message"
        self._patches: tuple[tuple[str, str], ...] = ()

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield Static(id="status")
        with TabbedContent(id="tabs", initial="conversation"):
            with TabPane("1 Conversation", id="conversation"):
                yield RichLog(
                    id="log", wrap=True, markup=False, highlight=False, max_lines=MAX_LINES
                )
                yield Static(id="streaming")
            with TabPane("2 Events", id="events"):
                yield EventsTable(id="events-table")
            with TabPane("3 Jobs", id="jobs"):
                yield JobsTable(id="jobs-table")
            with TabPane("4 Patches", id="patches"):
                yield PatchesTable(id="patches-table")
        with Horizontal(id="approval"):
            yield Static(id="asking")
        yield Input(placeholder="message to the run (enter sends)", id="message")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = f"run {self.run.run_id}"
        self.query_one("#message", Input).display = False
        self.query_one("#approval", Horizontal).display = False  # until a call waits
        self.query_one("#streaming", Static).display = False  # until a reply streams
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
        first = self.run.count == 0
        new, total = await self.gm.feed.catch_up(self.run, keep=FIRST_EVENTS if first else None)
        await self._draw_conversation(new, total)
        if new:
            self.query_one(EventsTable).add(new)
            self.query_one(JobsTable).redraw(self.run)
            patches = tuple((p.patch_id, p.status) for p in self.run.state.patches)
            if patches != self._patches:
                self._patches = patches
                self.query_one(PatchesTable).redraw(self.run)
        await self._draw_streaming()
        status = status_line(self.run, self.gm.clock.now())
        self.query_one("#status", Static).update(Text(status))
        self._draw_approval(self.run.state.pending_approval())

    async def _draw_conversation(self, new: list[Event], total: int) -> None:
        log = self.query_one("#log", RichLog)
        if total > len(new):  # a long run opened: its end, and where the rest is
            more = f"… {total - len(new):,} earlier events: `gm log {self.run.run_id}`"
            log.write(Text(more, style="dim"))
        theme = "ansi_dark" if self.gm.current_theme.dark else "ansi_light"
        for event in new:
            if (line := event_text(event)) is not None:
                log.write(line)
            if isinstance(event.data, PatchApplied):  # the change itself, highlighted
                diff = await self.gm.feed.diff(event.data.files)
                log.write(Syntax(diff, "diff", theme=theme, background_color="default"))

    async def _draw_streaming(self) -> None:
        row = await self.gm.feed.journal.get_run(self.run.run_id)
        live = row.lease_owner is not None and not row.orphaned  # not a killed process's file
        streaming = self.gm.feed.streaming(self.run.run_id) if live else None
        shown = self.query_one("#streaming", Static)
        shown.display = streaming is not None
        if streaming is not None:  # the reply as it comes; the log gets it once journaled
            shown.update(Text("▍ " + streaming, style="italic"))

    def _draw_approval(self, pending: ApprovalView | None) -> None:
        self.query_one("#approval", Horizontal).display = pending is not None
        if pending is not None:  # plain text: a reason may hold brackets
            keys = [("a", " approve · "), ("A", " always · "), ("d", " deny")]
            said: list[str | tuple[str, str]] = [
                (pending.name, "bold"),
                f" waits: {pending.reason}  — ",
            ]
            for key, what in keys:
                said += [(key, "bold"), what]
            self.query_one("#asking", Static).update(Text.assemble(*said))

    def _act(self, what: Callable[[], Awaitable[str]]) -> None:
        self.gm.act(what)

    def _tab(self) -> str:
        return self.query_one("#tabs", TabbedContent).active

    def action_tab(self, name: str) -> None:
        """Show tab ``name``, its table focused (arrows move its cursor)."""
        self.query_one("#tabs", TabbedContent).active = name
        shown = {"events": EventsTable, "jobs": JobsTable, "patches": PatchesTable}.get(name)
        self.set_focus(self.query_one(shown) if shown is not None else self.query_one(RichLog))

    def action_approve(self, always: bool) -> None:
        workspace, run_id, environ = self.gm.workspace, self.run.run_id, self.gm.environ
        self._act(lambda: _actions.approve(workspace, run_id, environ, always))

    def action_deny(self) -> None:
        self._ask("why not (enter denies; the model is told)", "deny")

    def action_message(self, preempt: bool) -> None:
        self._preempt = preempt
        self._ask("message, cuts in now (enter sends)" if preempt else "message (enter sends)")

    def _ask(self, placeholder: str, mode: str = "message") -> None:
        box = self.query_one("#message", Input)
        box.placeholder = placeholder
        box.display = True
        box.focus()
        self._mode = mode

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
        workspace, run_id, environ = self.gm.workspace, self.run.run_id, self.gm.environ
        self._act(lambda: _actions.interrupt(workspace, run_id, environ))

    def action_resume(self) -> None:
        children, run_id, tag = self.gm.processes, self.run.run_id, self.gm.clock.new_id()
        self._act(lambda: _actions.resume(children, run_id, tag))

    def action_cancel(self) -> None:
        workspace, run_id, environ = self.gm.workspace, self.run.run_id, self.gm.environ
        question = f"Cancel run {run_id}? It cannot be resumed."
        self._confirm(question, lambda: _actions.cancel(workspace, run_id, environ))

    def action_undo(self) -> None:
        workspace, run_id, environ = self.gm.workspace, self.run.run_id, self.gm.environ
        selected = self.query_one(PatchesTable).selected_patch()
        if self._tab() == "patches" and selected is not None:
            patch, status = selected
            if status != "applied":
                self.notify(f"patch {patch} is {status}: only an applied patch can be undone")
                return
            question = f"Undo patch {patch} only?"
            self._confirm(question, lambda: _actions.undo(workspace, run_id, environ, patch))
        else:
            question = "Undo every change this run made?"
            self._confirm(question, lambda: _actions.undo(workspace, run_id, environ))

    def _confirm(self, question: str, what: Callable[[], Awaitable[str]]) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._act(what)

        self.gm.push_screen(Confirm(question), answered)

    def action_fork(self) -> None:
        chosen = self.query_one(EventsTable).selected_seq() if self._tab() == "events" else None
        seq = chosen or self.run.last_seq
        children, run_id, tag = self.gm.processes, self.run.run_id, self.gm.clock.new_id()
        self._act(lambda: _actions.fork(children, run_id, seq, tag))

    def action_back(self) -> None:
        self.gm.pop_screen()
