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

from gm_agent._render import model_label
from gm_agent.clock import parse_timestamp
from gm_agent.events import (
    Event,
    FileChange,
    JobAmbiguous,
    JobAttemptFailed,
    JobCancelled,
    JobIntent,
    JobResult,
    ModelResponse,
)
from gm_agent.journal import Journal, RunRow
from gm_agent.kernel import RunState, fold
from gm_agent.kernel._live import live_path
from gm_agent.patches import render_diff

__all__ = ["CHUNK", "POLL_S", "Feed", "JobLine", "RunFeed"]

POLL_S = 0.1
"""How often the TUI looks for new events, in seconds."""

CHUNK = 5_000
"""Events read and folded at a time."""

DIFF_LINES = 60
"""Lines of a patch's diff drawn in a run view."""


MAX_JOBS = 1_000
"""Jobs a run view keeps (the newest; `gm log` has all)."""


@dataclass
class JobLine:
    """One job of a run as the jobs tab shows it.

    ``status`` is ``running``, ``ok``, ``failed``, ``ambiguous`` or ``cancelled``;
    ``duration_ms`` is the job's wall time in milliseconds over all its attempts
    (from ``job.result``, else from its intent's time to the closing event's),
    ``None`` while it runs.
    """

    job_id: str
    kind: str
    what: str
    started_at: str
    status: str = "running"
    attempts: int = 1
    duration_ms: int | None = None

    def close(self, status: str, at: str, duration_ms: int | None = None) -> None:
        """Mark the job ended with ``status`` at ``at`` (RFC 3339)."""
        self.status = status
        if duration_ms is None:
            elapsed = parse_timestamp(at) - parse_timestamp(self.started_at)
            duration_ms = max(0, round(elapsed.total_seconds() * 1000))
        self.duration_ms = duration_ms


def _what(intent: JobIntent) -> str:
    """A job's gist: a shell job's command, a model job's model and step."""
    args = intent.args
    for key in ("command", "url", "name"):
        if isinstance(value := args.get(key), str):
            return value
    if isinstance(model := args.get("model"), str):
        return f"step {args.get('step', '?')}: {model_label(model)}"
    return intent.key


@dataclass
class RunFeed:
    """One run as the TUI shows it: the fold of its events so far, the seq of
    the last one (the events themselves are drawn, then let go), its jobs, and
    how full the model's context was at its last reply.

    ``context_tokens`` is the last reply's input tokens (what the model was
    sent), ``window_tokens`` the model's context window then (``None`` when the
    journal does not say).
    """

    run_id: str
    state: RunState = field(default_factory=RunState)
    last_seq: int = 0
    count: int = 0
    jobs: dict[str, JobLine] = field(default_factory=dict[str, JobLine])
    changed_jobs: set[str] = field(default_factory=set[str])
    context_tokens: int | None = None
    window_tokens: int | None = None

    def take(self, new: list[Event]) -> list[Event]:
        """Fold in ``new`` events (oldest first); returns them. The ids of the jobs
        they touched are added to ``changed_jobs`` (the view clears it)."""
        if new:
            self.state = fold(new, self.state)
            self.last_seq = new[-1].seq or self.last_seq
            self.count += len(new)
            for event in new:
                self._track(event)
        return new

    def _track(self, event: Event) -> None:
        data = event.data
        if isinstance(data, ModelResponse):
            self.context_tokens = data.usage.input_tokens
            self.window_tokens = data.window_tokens or self.window_tokens
            return
        if not isinstance(
            data, JobIntent | JobAttemptFailed | JobResult | JobAmbiguous | JobCancelled
        ):
            return
        self.changed_jobs.add(data.job_id)
        line = self.jobs.get(data.job_id)
        if isinstance(data, JobIntent):
            if line is not None:  # re-run after a crash: the same job, another attempt
                line.attempts, line.status, line.duration_ms = line.attempts + 1, "running", None
                return
            self.jobs[data.job_id] = JobLine(data.job_id, data.job_kind, _what(data), event.at)
            if len(self.jobs) > MAX_JOBS:
                del self.jobs[next(iter(self.jobs))]
        elif line is None:  # its intent was let go (more than MAX_JOBS since)
            return
        elif isinstance(data, JobAttemptFailed):
            line.attempts += 1
        elif isinstance(data, JobResult):
            line.close("ok" if data.ok else "failed", event.at, data.duration_ms)
        else:
            line.close("ambiguous" if isinstance(data, JobAmbiguous) else "cancelled", event.at)


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
