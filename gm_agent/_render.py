"""Human-readable rendering of events and runs for the CLI (never used by the kernel)."""

from __future__ import annotations

import json
from typing import Any, assert_never

from gm_agent.events import (
    Event,
    JobAmbiguous,
    JobAttemptFailed,
    JobCancelled,
    JobIntent,
    JobResult,
    ModelResponse,
    PatchApplied,
    PatchConflict,
    PatchIntent,
    PatchReapplied,
    PatchReverted,
    RunCreated,
    RunFinished,
    RunResumed,
    RunStatusChanged,
    ToolCalled,
    ToolReturned,
    UserMessage,
)
from gm_agent.journal import RunRow

MAX_SHOWN = 160


_CONTROL = {c: "�" for c in [*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F, *range(0x80, 0xA0)]}
"""C0/C1 control characters (ESC among them) that a terminal would obey rather than show."""


def _short(text: str, limit: int = MAX_SHOWN) -> str:
    flat = text.replace("\n", "⏎ ").translate(_CONTROL)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _args(args: dict[str, Any]) -> str:
    return _short(", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in args.items()))


def progress_line(event: Event) -> str | None:
    """One line of ``gm run`` progress for ``event``, or None for events not worth a line."""
    data = event.data
    match data:
        case RunCreated():
            return f"run {event.run_id} · model {data.model} · at most {data.max_steps} steps"
        case ModelResponse():
            text = f"  “{_short(data.text, 100)}”" if data.text.strip() else ""
            tokens = data.usage.input_tokens + data.usage.output_tokens
            return f"· step done in {data.duration_ms} ms, {tokens} tokens{text}"
        case ToolCalled():
            return f"→ {data.name}({_args(data.args)})"
        case ToolReturned():
            mark = "✓" if data.ok else "✗"
            return f"  {mark} {_short(data.output)}"
        case RunStatusChanged() if data.to == "paused":
            return f"paused: {data.reason or ''}"
        case RunResumed():
            return f"resumed run {event.run_id} (it was {data.status})"
        case JobAmbiguous():
            return f"  ? {data.message}"
        case JobAttemptFailed():
            return f"  ↻ attempt {data.attempt} failed ({_short(data.error, 80)}); retrying in {data.retry_in_ms} ms"
        case RunFinished():
            detail = data.summary if data.status == "succeeded" else data.error
            return f"{data.status}: {detail or ''}"
        case _:
            return None


def log_line(event: Event) -> str:
    """One line of ``gm log`` for ``event``: seq, time, kind and the gist of its data."""
    data = event.data
    match data:
        case RunCreated():
            gist = f"model={data.model} max_steps={data.max_steps} task={_short(data.task, 80)!r}"
        case RunStatusChanged():
            gist = f"{data.from_} -> {data.to}" + (f" ({data.reason})" if data.reason else "")
        case UserMessage():
            gist = _short(data.text)
        case ModelResponse():
            calls = ", ".join(c.name for c in data.tool_calls)
            gist = f"text={_short(data.text, 60)!r} calls=[{calls}] tokens={data.usage.input_tokens}+{data.usage.output_tokens}"
        case ToolCalled():
            gist = f"{data.call_id} {data.name}({_args(data.args)})"
        case ToolReturned():
            gist = f"{data.call_id} {'ok' if data.ok else 'error'}: {_short(data.output, 100)}"
        case JobIntent():
            gist = f"{data.job_kind} {data.key}"
        case JobResult():
            gist = f"{data.job_kind} {'ok' if data.ok else 'failed'} in {data.duration_ms} ms" + (
                f" ({data.error})" if data.error else ""
            )
        case PatchIntent() | PatchApplied() | PatchReverted() | PatchReapplied():
            gist = ", ".join(f"{f.op} {f.path}" for f in data.files) or "(no change)"
            if isinstance(data, PatchReverted | PatchReapplied):
                gist = (
                    f"{data.patch_id} by {data.undo_id}{' (forced)' if data.forced else ''}: {gist}"
                )
        case PatchConflict():
            gist = "files changed since read: " + ", ".join(m.path for m in data.mismatches)
        case JobAttemptFailed():
            gist = f"{data.job_kind} attempt {data.attempt}: {_short(data.error, 80)} (retry in {data.retry_in_ms} ms)"
        case JobAmbiguous():
            gist = f"{data.job_kind} {data.key}: outcome unknown"
        case JobCancelled():
            gist = f"{data.job_kind} {data.key}: {data.reason}"
        case RunResumed():
            gist = f"by {data.owner} (was {data.status})"
        case RunFinished():
            gist = f"{data.status}: {data.summary or data.error or ''}"
        case _:
            assert_never(data)
    return f"{event.seq:>6}  {event.at[11:23]}  {event.kind:<18} {gist}"


def run_line(run: RunRow) -> str:
    """One line of ``gm runs``."""
    task = _short(run.task.strip().splitlines()[0] if run.task.strip() else "", 50)
    tokens = run.input_tokens + run.output_tokens
    status = "orphaned" if run.orphaned else run.status
    return (
        f"{run.run_id}  {status:<10} {run.steps:>5} {tokens:>8}  "
        f"{run.created_at[:19].replace('T', ' ')}  {_short(run.model, 24):<24}  {task}"
    )


RUNS_HEADER = f"{'RUN':<26}  {'STATUS':<10} {'STEPS':>5} {'TOKENS':>8}  {'CREATED (UTC)':<19}  {'MODEL':<24}  TASK"
