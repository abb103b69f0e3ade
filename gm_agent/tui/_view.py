"""How the TUI draws a run: its events as conversation lines, and its status line.

Assistant text is shown whole; tool calls with their arguments shortened;
results folded to their first line with their size; errors in red;
``job.ambiguous`` and ``patch.conflict`` stand out; patches list their files.
Pure functions of events and state, so they are tested without a screen.
"""

from __future__ import annotations

import json
from datetime import datetime

from rich.text import Text

from gm_agent._render import cost_text, event_gist, model_label, waiting_reason
from gm_agent.clock import parse_timestamp
from gm_agent.events import (
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    ContextCompacted,
    Event,
    JobAmbiguous,
    ModelFallback,
    ModelResponse,
    PatchApplied,
    PatchConflict,
    PatchReverted,
    RunFinished,
    RunStatusChanged,
    ToolCalled,
    ToolReturned,
    UserMessage,
)
from gm_agent.journal import RunRow
from gm_agent.kernel import PatchView
from gm_agent.tui._feed import JobLine, RunFeed

__all__ = [
    "age",
    "event_cells",
    "event_text",
    "job_cells",
    "patch_cells",
    "run_cells",
    "status_line",
]

_FOLD = 100


def _short(text: str, limit: int = _FOLD) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


def _size(text: str) -> str:
    size = len(text.encode())
    return f"{size} B" if size < 1024 else f"{size / 1024:.1f} KB"


def event_text(event: Event) -> Text | None:
    """The conversation line(s) for ``event``, or ``None`` for events not shown."""
    data = event.data
    match data:
        case UserMessage():
            who = "gm" if event.source == "kernel" else "you"
            mark = " (preempt)" if data.preempt else ""
            return Text.assemble((f"{who}{mark}: ", "bold cyan"), data.text)
        case ModelResponse():
            return Text(data.text) if data.text.strip() else None  # the theme's colour
        case ToolCalled():
            args = json.dumps(data.args, ensure_ascii=False)
            return Text.assemble(("→ ", "bold"), (data.name, "bold yellow"), f" {_short(args, 80)}")
        case ToolReturned():
            style = "green" if data.ok else "bold red"
            mark = "✓" if data.ok else "✗"
            return Text.assemble(
                (f"  {mark} ", style),
                (_short(data.output), style),
                (f"  [{_size(data.output)}]", "dim"),
            )
        case ApprovalRequested():
            return Text(f"? {data.name}: {data.reason}", style="bold magenta")
        case ApprovalGranted():
            return Text(f"  approved by {data.by}", style="magenta")
        case ApprovalDenied():
            return Text(f"  denied: {data.reason or 'no reason given'}", style="magenta")
        case PatchApplied() | PatchReverted():
            verb = "changed" if isinstance(data, PatchApplied) else "reverted"
            files = ", ".join(f"{f.op} {f.path}" for f in data.files)
            return Text(f"  ✎ {verb}: {files}", style="blue")
        case PatchConflict():
            paths = ", ".join(m.path for m in data.mismatches)
            return Text(
                f"  ⚠ patch.conflict: changed since read: {paths}", style="bold red reverse"
            )
        case JobAmbiguous():
            return Text(f"  ⚠ job.ambiguous: {data.message}", style="bold red reverse")
        case ModelFallback():
            return Text(f"! {data.from_model} failing; now {data.to_model}", style="yellow")
        case ContextCompacted():
            return Text(
                f"· context compacted: ~{data.tokens_before:,} -> ~{data.tokens_after:,} tokens",
                style="dim",
            )
        case RunStatusChanged() if data.to in ("paused", "waiting") and data.reason != "approval":
            return Text(f"· {data.to}: {data.reason or ''}", style="yellow")
        case RunFinished():
            style = "bold green" if data.status == "succeeded" else "bold red"
            return Text(f"■ {data.status}: {data.summary or data.error or ''}", style=style)
        case _:
            return None


def age(at: str, now: datetime) -> str:
    """How long ago ``at`` (RFC 3339) was: ``12s``, ``5m``, ``3h``, ``2d``."""
    seconds = max(0, int((now - parse_timestamp(at)).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def run_cells(row: RunRow, now: datetime, branch: str = "") -> tuple[str, ...]:
    """The runs list's cells for ``row`` (see ``COLUMNS``): id (after ``branch``,
    a child run's place under its parent, see ``_render.run_tree``), status (and
    why it waits), steps, tokens, cost, age, model, task, and the fork it comes
    from. The task comes late so an 80-column terminal shows every figure."""
    status = "orphaned" if row.orphaned and row.status != "waiting" else row.status
    if (why := waiting_reason(row)) is not None:
        status += f": {why}"
    return (
        branch + row.run_id[-8:],
        _short(status, 22),
        str(row.steps),
        _tokens(row.input_tokens + row.output_tokens),
        cost_text(row.cost_usd, row.unpriced_steps, row.steps),
        age(row.created_at, now),
        model_label(row.model)[:20],
        _short(row.task, 40),
        f"↳ {row.parent_id[-8:]}@{row.fork_seq}" if row.parent_id else "",
    )


def status_line(run: RunFeed, now: datetime) -> str:
    """The run's status line: status (and why it waits), model, steps against
    the budget, tokens, cost against its limit, context use (the last request's
    input tokens against the model's window), elapsed time and sandbox."""
    state = run.state
    status = state.status + (f" ({state.waiting_reason})" if state.waiting_reason else "")
    tokens = state.usage.input_tokens + state.usage.output_tokens
    limit = state.budget.get("max_cost_usd")
    cost = cost_text(state.cost_usd, state.unpriced_steps, state.step)
    if isinstance(limit, int | float):
        cost += f"/${limit:g}"
    elapsed = age(state.created_at, now) if state.created_at else "-"
    return (
        f"{status} · {model_label(state.model)} · step {state.step}/{state.max_steps} · "
        f"{_tokens(tokens)} tok · {cost} · ctx {context_use(run)} · {elapsed} · "
        f"{state.sandbox or 'sandbox ?'}"
    )


def _tokens(count: int) -> str:
    """``950``, ``12.3k``, ``1.2M``: short enough for an 80-column status line."""
    if count < 1000:
        return str(count)
    if count < 1_000_000:
        return f"{count / 1000:.1f}k"
    return f"{count / 1_000_000:.1f}M"


def context_use(run: RunFeed) -> str:
    """How full the model's context was at its last reply: ``12%`` of the window,
    ``12.3k`` tokens when the window is not journaled, ``-`` before any reply."""
    if run.context_tokens is None:
        return "-"
    if not run.window_tokens:
        return _tokens(run.context_tokens)
    return f"{100 * run.context_tokens / run.window_tokens:.0f}%"


def job_cells(job: JobLine) -> tuple[str, ...]:
    """The jobs tab's cells: kind, status, attempts, duration, and what it does."""
    if job.duration_ms is None:
        took = "…"
    elif job.duration_ms < 1000:
        took = f"{job.duration_ms} ms"
    else:
        took = f"{job.duration_ms / 1000:.1f} s"
    return (job.kind, job.status, str(job.attempts), took, _short(job.what, 60))


def patch_cells(patch: PatchView) -> tuple[str, ...]:
    """The patches tab's cells: applied at seq, id, status, and its files."""
    files = ", ".join(f"{f.op} {f.path}" for f in patch.files)
    return (str(patch.applied_seq or patch.seq), patch.patch_id, patch.status, _short(files, 60))


def event_cells(event: Event) -> tuple[str, ...]:
    """The events tab's cells: seq, kind, and the gist ``gm log`` prints."""
    return (str(event.seq), event.kind, _short(event_gist(event), 80))
