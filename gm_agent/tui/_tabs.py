"""The run view's tables: its events (to fork from one), its jobs, its patches
(to undo one). Each is redrawn from a :class:`~gm_agent.tui._feed.RunFeed`."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from gm_agent.events import Event
from gm_agent.tui._feed import RunFeed
from gm_agent.tui._view import event_cells, job_cells, patch_cells

__all__ = ["EventsTable", "JobsTable", "PatchesTable"]

MAX_EVENT_ROWS = 2_000
"""Events the events tab keeps (the newest; `gm log` has all)."""


class _Table(DataTable[Text]):
    COLUMNS: tuple[str, ...] = ()

    def __init__(self, *, id: str) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.keys: list[ColumnKey] = []

    def on_mount(self) -> None:
        self.keys = list(self.add_columns(*self.COLUMNS))

    def selected_key(self) -> str | None:
        """The key of the row under the cursor, if any."""
        if self.row_count == 0:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)

    def put(self, key: str, cells: tuple[str, ...]) -> None:
        """Add the row ``key``, or update its cells (text, never markup)."""
        if key in self.rows:
            for column, cell in zip(self.keys, cells, strict=True):
                self.update_cell(key, column, Text(cell))
        else:
            self.add_row(*(Text(c) for c in cells), key=key)


class EventsTable(_Table):
    """The run's events: seq, kind, gist (as ``gm log``); ``f`` forks at the selected one."""

    COLUMNS = ("seq", "kind", "gist")

    def add(self, events: list[Event]) -> None:
        """Append rows for ``events``, letting the oldest go past :data:`MAX_EVENT_ROWS`."""
        follow = self.row_count == 0 or self.cursor_row >= self.row_count - 1
        for event in events[-MAX_EVENT_ROWS:]:
            self.put(str(event.seq), event_cells(event))
        while self.row_count > MAX_EVENT_ROWS:
            self.remove_row(self.ordered_rows[0].key)
        if follow and self.row_count:  # at the end: stay there as events come
            self.move_cursor(row=self.row_count - 1)

    def selected_seq(self) -> int | None:
        """The seq of the selected event, if any."""
        key = self.selected_key()
        return None if key is None else int(key)


class JobsTable(_Table):
    """The run's jobs: kind, status, attempts, duration, what it does."""

    COLUMNS = ("kind", "status", "tries", "took", "what")

    def redraw(self, run: RunFeed) -> None:
        """Update the rows of the jobs that changed since the last redraw."""
        for job_id in sorted(run.changed_jobs):
            line = run.jobs.get(job_id)
            if line is not None:
                self.put(job_id, job_cells(line))
            elif job_id in self.rows:  # let go by the feed
                self.remove_row(job_id)
        run.changed_jobs.clear()


class PatchesTable(_Table):
    """The run's patches: seq, id, status, files; ``u`` undoes the selected one."""

    COLUMNS = ("seq", "patch", "status", "files")

    def redraw(self, run: RunFeed) -> None:
        """Update the rows from the run's state (a patch's status changes on undo)."""
        for patch in run.state.patches:
            self.put(patch.patch_id, patch_cells(patch))

    def selected_patch(self) -> tuple[str, str] | None:
        """The selected patch's id and status, if any."""
        key = self.selected_key()
        if key is None:
            return None
        return key, str(self.get_cell(key, self.keys[2]))
