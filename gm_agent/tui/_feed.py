"""What the TUI reads: the journal, and nothing else.

The TUI opens the workspace's journal read-only and polls it (every
:data:`POLL_S` seconds) for runs and for the events after the last seq it has
shown; it never holds a lease, so closing it (or its crash) never affects a run.
Its buttons act through the same library functions as the CLI
(:mod:`gm_agent.tui._actions`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gm_agent.events import Event, FileChange
from gm_agent.journal import Journal, RunRow
from gm_agent.kernel import RunState, fold
from gm_agent.kernel._live import live_path
from gm_agent.patches import render_diff

__all__ = ["CHUNK", "POLL_S", "Feed", "RunFeed"]

POLL_S = 0.1
"""How often the TUI looks for new events, in seconds."""

CHUNK = 5_000
"""Events read and folded at a time."""

DIFF_LINES = 60
"""Lines of a patch's diff drawn in a run view."""


@dataclass
class RunFeed:
    """One run as the TUI shows it: the fold of its events so far, and the seq of
    the last one (the events themselves are drawn, then let go)."""

    run_id: str
    state: RunState = field(default_factory=RunState)
    last_seq: int = 0
    count: int = 0

    def take(self, new: list[Event]) -> list[Event]:
        """Fold in ``new`` events (oldest first); returns them."""
        if new:
            self.state = fold(new, self.state)
            self.last_seq = new[-1].seq or self.last_seq
            self.count += len(new)
        return new


class Feed:
    """The journal of ``workspace``, read for the TUI."""

    def __init__(self, journal: Journal, workspace: Path) -> None:
        self.journal = journal
        self.workspace = workspace

    @classmethod
    async def open(cls, workspace: Path) -> Feed:
        """Open the workspace's journal read-only.

        Raises:
            JournalError: there is no journal yet, or it cannot be read.
        """
        from gm_agent.settings import GM_DIR, JOURNAL_FILE

        journal = await Journal.open(workspace / GM_DIR / JOURNAL_FILE, read_only=True)
        return cls(journal, workspace)

    async def close(self) -> None:
        """Close the journal."""
        await self.journal.close()

    async def diff(self, files: Sequence[FileChange], max_lines: int = DIFF_LINES) -> str:
        """A patch's files as one unified diff (its contents are journal blobs),
        cut after ``max_lines`` lines with a note saying how many were left out."""
        shas = {s for f in files for s in (f.before_sha256, f.after_sha256) if s}
        blobs = await self.journal.get_blobs(shas)
        text = "".join(
            render_diff(
                f.old_path or (f.path if f.before_sha256 else None),
                f.path if f.after_sha256 else None,
                blobs.get(f.before_sha256 or "") if f.before_sha256 else None,
                blobs.get(f.after_sha256 or "") if f.after_sha256 else None,
                f.before_mode,
                f.mode,
            )
            for f in files
        )
        lines = text.splitlines()
        if len(lines) > max_lines:
            more = len(lines) - max_lines
            lines = [*lines[:max_lines], f"... {more} more lines (gm diff shows all)"]
        return "\n".join(lines)

    def streaming(self, run_id: str) -> str | None:
        """The reply the model is streaming for ``run_id`` (its last 2,000
        characters), or ``None`` when nothing streams (a file a killed process
        left behind is not shown: the caller asks only for running runs)."""
        try:
            text = live_path(self.workspace, run_id).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        return text[-2000:] or None

    async def runs(self) -> list[RunRow]:
        """Every run, newest first."""
        return await self.journal.list_runs()

    async def catch_up(self, run: RunFeed, keep: int | None = None) -> tuple[list[Event], int]:
        """Fold the run's new events into ``run``, :data:`CHUNK` at a time (so a long
        history is never all in memory at once).

        Returns:
            The newest ``keep`` of them (all when ``None``), oldest first, to draw;
            and how many there were.
        """
        kept: list[Event] = []
        total = 0
        while True:
            chunk = await self.journal.read(run.run_id, after_seq=run.last_seq, limit=CHUNK)
            run.take(chunk)
            total += len(chunk)
            kept.extend(chunk)
            if keep is not None:
                kept = kept[-keep:]
            if len(chunk) < CHUNK:
                return kept, total
