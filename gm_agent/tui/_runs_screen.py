"""The runs list: every run of the workspace, newest first, live."""

from __future__ import annotations

from typing import ClassVar, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Input

from gm_agent._render import run_tree
from gm_agent.tui._feed import POLL_S
from gm_agent.tui._run_screen import RunScreen
from gm_agent.tui._screen import GmScreen
from gm_agent.tui._view import run_cells

__all__ = ["COLUMNS", "RunsScreen"]

COLUMNS = ("run", "status", "steps", "tokens", "cost", "age", "model", "task", "fork of")
"""The runs list's columns; ``status`` says why a run waits (``waiting: approval``)."""


class RunsScreen(GmScreen):
    """Every run of the workspace, newest first, refreshed as the journal grows."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open run"),
        Binding("slash", "filter", "Filter"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "app.quit", "Quit"),
    ]
    DESCRIPTIONS: ClassVar[dict[str, str]] = {
        "filter": "Filter the runs by status, task or model (enter applies, empty shows all)",
    }

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield Input(placeholder="filter: status, task or model", id="filter")
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        table = self.table()
        table.add_columns(*COLUMNS)
        table.focus()
        self.refresh_runs()
        self.set_interval(POLL_S * 5, self.refresh_runs)

    @work(exclusive=True, group="runs", exit_on_error=False)
    async def refresh_runs(self) -> None:
        """Redraw the list from the ``runs`` projection, keeping the selection."""
        rows = await self.gm.feed.runs()
        wanted = self.query_one("#filter", Input).value.strip().lower()
        now = self.gm.clock.now()
        table = self.table()
        selected = self.selected()
        table.clear()
        for branch, row in run_tree(rows):  # a child run under its parent
            cells = run_cells(row, now, branch)
            if wanted and wanted not in " ".join((cells[1], row.task, row.model)).lower():
                continue
            table.add_row(*(Text(c) for c in cells), key=row.run_id)  # text, never markup
        if selected is not None and selected in table.rows:  # still shown after the filter
            table.move_cursor(row=table.get_row_index(selected))

    def table(self) -> DataTable[Text]:
        """The runs table."""
        return cast("DataTable[Text]", self.query_one("#runs", DataTable))

    def selected(self) -> str | None:
        """The id of the run under the cursor, if any."""
        table = self.table()
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return str(key.value)

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.gm.push_screen(RunScreen(str(event.row_key.value)))

    def action_open(self) -> None:
        if (run_id := self.selected()) is not None:
            self.gm.push_screen(RunScreen(run_id))

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    @on(Input.Submitted, "#filter")
    def _filtered(self) -> None:
        self.refresh_runs()
        self.table().focus()
