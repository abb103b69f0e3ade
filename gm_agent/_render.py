"""Human-readable rendering of events and runs for the CLI (never used by the kernel)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, assert_never

from gm_agent.events import (
    AgentsJoined,
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    BudgetRaised,
    CheckpointSaved,
    ContextCompacted,
    ContextLoaded,
    Event,
    JobAmbiguous,
    JobAttemptFailed,
    JobCancelled,
    JobIntent,
    JobResult,
    ModelFallback,
    ModelResponse,
    PatchApplied,
    PatchConflict,
    PatchIntent,
    PatchReapplied,
    PatchReverted,
    RunCancel,
    RunCreated,
    RunFinished,
    RunForked,
    RunInterrupt,
    RunResumed,
    RunStatusChanged,
    SandboxProbed,
    ScheduleArmed,
    SchemeStepSkipped,
    ToolCalled,
    ToolReturned,
    TriggerFired,
    UserMessage,
    WebhookRejected,
)
from gm_agent.journal import RunRow
from gm_agent.kernel import Comparison, RunSummary, StepView

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
        case ApprovalRequested():
            return (
                f"? {data.name}({_args(data.args)}) {data.reason}. Answer from another "
                f"terminal: `gm approve {event.run_id}` or `gm deny {event.run_id} --reason ...`"
            )
        case ApprovalGranted():
            return f"  approved by {data.by}"
        case ApprovalDenied():
            return f"  denied: {data.reason or 'no reason given'}"
        case ToolReturned():
            mark = "✓" if data.ok else "✗"
            return f"  {mark} {_short(data.output)}"
        case RunStatusChanged() if data.to == "paused":
            return f"paused: {data.reason or ''}"
        case RunStatusChanged() if data.to == "waiting" and data.reason != "approval":
            return f"waiting: {data.reason or ''}"
        case RunResumed():
            return f"resumed run {event.run_id} (it was {data.status})"
        case SandboxProbed() if data.backend == "none":
            return f"! shell commands run unconfined: {data.detail}"
        case RunForked():
            return (
                f"run {event.run_id} · fork of {data.parent_id} at seq {data.fork_seq} "
                f"· model {data.model} · at most {data.max_steps} steps"
            )
        case ContextLoaded() if data.files:
            return "· project context: " + ", ".join(f.path for f in data.files)
        case ContextCompacted():
            return (
                f"· context compacted: ~{data.tokens_before:,} -> ~{data.tokens_after:,} "
                f"of {data.window_tokens:,} tokens"
            )
        case RunInterrupt():
            return f"! interrupt asked by {data.by}; pausing at the next safe point"
        case RunCancel():
            return f"! cancel asked by {data.by}" + (f": {data.reason}" if data.reason else "")
        case UserMessage():
            return f"» {_short(data.text, 200)}"
        case ModelFallback():
            return f"! {data.from_model} is failing ({_short(data.reason, 80)}); moving to {data.to_model}"
        case JobAmbiguous():
            return f"  ? {data.message}"
        case JobIntent() if isinstance(data.args.get("step"), str):  # a scheme step
            return f"▸ {data.args['step']} ({data.job_kind})"
        case JobResult() if "/scheme/" in data.key:
            mark = "✓" if data.ok else "✗"
            return f"  {mark} {_short(data.error or data.output.strip() or 'done', 100)}"
        case SchemeStepSkipped():
            return f"▸ {data.step} skipped: {_short(data.reason, 100)}"
        case AgentsJoined():
            ended = ", ".join(f"{c.run_id[-6:]} {c.status}" for c in data.children)
            return f"  ⋈ {data.group} {data.outcome} ({data.policy}): {ended or 'no children'}"
        case JobAttemptFailed():
            return f"  ↻ attempt {data.attempt} failed ({_short(data.error, 80)}); retrying in {data.retry_in_ms} ms"
        case RunFinished():
            detail = data.summary if data.status == "succeeded" else data.error
            return f"{data.status}: {detail or ''}"
        case _:
            return None


def log_line(event: Event) -> str:
    """One line of ``gm log`` for ``event``: seq, time, kind and the gist of its data."""
    return f"{event.seq:>6}  {event.at[11:23]}  {event.kind:<18} {event_gist(event)}"


def event_gist(event: Event) -> str:
    """The gist of ``event``'s data, in one line, as ``gm log`` prints it."""
    data = event.data
    match data:
        case RunCreated():
            gist = f"model={data.model} max_steps={data.max_steps} task={_short(data.task, 80)!r}"
        case RunStatusChanged():
            gist = f"{data.from_} -> {data.to}" + (f" ({data.reason})" if data.reason else "")
        case UserMessage():
            gist = ("[preempt] " if data.preempt else "") + _short(data.text)
        case ModelResponse():
            calls = ", ".join(c.name for c in data.tool_calls)
            gist = f"text={_short(data.text, 60)!r} calls=[{calls}] tokens={data.usage.input_tokens}+{data.usage.output_tokens}"
        case ToolCalled():
            gist = f"{data.call_id} {data.name}({_args(data.args)})"
            if data.decision is not None:
                gist += f" [{data.decision}: {data.rule}]"
        case ApprovalRequested():
            gist = f"{data.call_id} {data.name}({_args(data.args)}) {data.risk}: {data.reason}"
        case ApprovalGranted():
            gist = f"{data.call_id} by {data.by}" + (
                f", always ({data.always})" if data.always else ""
            )
        case ApprovalDenied():
            gist = f"{data.call_id}: {data.reason or 'no reason given'}"
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
            elif isinstance(data, PatchApplied):  # the id `gm undo --patch` takes
                gist = f"{data.patch_id}: {gist}"
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
        case RunForked():
            gist = f"from {data.parent_id} at seq {data.fork_seq}, model={data.model}"
        case CheckpointSaved():
            gist = f"state after seq {data.upto_seq}, step {data.steps}: {data.state_hash[:16]}"
        case SandboxProbed():
            gist = f"{data.backend}: {data.detail}"
        case BudgetRaised():
            raised = {"max_steps": data.max_steps} if data.max_steps else {}
            gist = ", ".join(f"{k}={v}" for k, v in {**raised, **data.budget}.items())
        case ModelFallback():
            gist = f"{data.from_model} -> {data.to_model}: {data.reason}"
        case TriggerFired():
            what = f"skipped: {data.skipped}" if data.skipped else f"run {data.started_run}"
            detail = data.event or data.scheduled_at or ", ".join(data.paths[:5])
            gist = f"{data.trigger} ({data.on}{': ' + detail if detail else ''}) -> {what}"
        case WebhookRejected():
            gist = f"{data.path} {data.status}: {data.reason}"
        case ScheduleArmed():
            gist = f"{data.trigger} ({data.schedule}) next at {data.next_at}"
        case SchemeStepSkipped():
            gist = f"{data.step}: {data.reason}"
        case AgentsJoined():
            ended = ", ".join(f"{c.run_id} {c.status}" for c in data.children)
            gist = f"{data.group} {data.outcome} ({data.policy}, {data.on_failure}): {ended}"
        case RunInterrupt() | RunCancel():
            gist = f"by {data.by}" + (f": {data.reason}" if data.reason else "")
        case ContextLoaded():
            shown = [f.path + (" (cut)" if f.truncated else "") for f in data.files]
            gist = ", ".join(shown) or "no file"
            if data.skipped:
                gist += "; skipped: " + "; ".join(data.skipped)
            if data.skills:
                gist += f"; {len(data.skills)} skills offered"
        case ContextCompacted():
            gist = (
                f"~{data.tokens_before} -> ~{data.tokens_after} of {data.window_tokens} tokens "
                f"(outputs cut before turn {data.truncated_before}, "
                f"turns dropped before {data.dropped_before})"
            )
        case RunFinished():
            gist = f"{data.status}: {data.summary or data.error or ''}"
        case _:
            assert_never(data)
    return gist


def run_tree(rows: Sequence[RunRow]) -> list[tuple[str, RunRow]]:
    """``rows`` (newest first) as a tree: each run that has a parent among them
    (``parent_run``: a child run, a scheme's agent step) comes right under it,
    oldest first, with its branch (``├ ``, ``└ ``, ``│ └ ``...); every other
    run is a root, in the given order with the prefix ``""``.
    """
    listed = {row.run_id for row in rows}
    children: dict[str, list[RunRow]] = {}
    for row in reversed(rows):  # oldest first under a parent
        if row.parent_run is not None and row.parent_run in listed:
            children.setdefault(row.parent_run, []).append(row)
    ordered: list[tuple[str, RunRow]] = []

    def visit(row: RunRow, prefix: str, above: str) -> None:
        ordered.append((prefix, row))
        below = children.get(row.run_id, [])
        for index, child in enumerate(below):
            last = index == len(below) - 1
            visit(child, above + ("└ " if last else "├ "), above + ("  " if last else "│ "))

    for row in rows:
        if row.parent_run is None or row.parent_run not in listed:
            visit(row, "", "")
    return ordered


def run_line(run: RunRow, branch: str = "") -> str:
    """One line of ``gm runs``; ``branch`` is a child run's place in the tree
    (:func:`run_tree`), written before its id."""
    task = _short(run.task.strip().splitlines()[0] if run.task.strip() else "", 50)
    tokens = run.input_tokens + run.output_tokens
    status = "orphaned" if run.orphaned else run.status
    line = (
        f"{branch}{run.run_id}  {status:<10} {run.steps:>5} {tokens:>8} {cost_text(run.cost_usd, run.unpriced_steps, run.steps):>9}  "
        f"{run.created_at[:19].replace('T', ' ')}  {_short(model_label(run.model), 24):<24}  {task}"
    )
    if run.parent_id is not None:
        line += f"  ↳ fork of {run.parent_id}@{run.fork_seq}"
    if (why := waiting_reason(run)) is not None:
        line += f"  ({run.status}: {why})"
    return line


def model_label(model: str) -> str:
    """``model`` as shown in listings: a scripted model by its file name, not its path."""
    if model.startswith("scripted:"):
        return "scripted:" + model.rsplit("/", 1)[-1]
    return model


def waiting_reason(run: RunRow) -> str | None:
    """Why a ``waiting`` or ``paused`` run stopped (``approval``, ``writer lock: ...``),
    or ``None`` for a run in any other status."""
    if run.status not in ("waiting", "paused"):
        return None
    return run.status_reason


RUNS_HEADER = f"{'RUN':<26}  {'STATUS':<10} {'STEPS':>5} {'TOKENS':>8} {'COST':>9}  {'CREATED (UTC)':<19}  {'MODEL':<24}  TASK"


def cost_text(cost_usd: float, unpriced_steps: int, steps: int) -> str:
    """``$0.0123``; ``?`` when no response had a price; ``$0.01+`` when some had none."""
    if steps and unpriced_steps >= steps:
        return "?"
    shown = f"${cost_usd:.4f}" if cost_usd < 100 else f"${cost_usd:,.2f}"
    return f"{shown}+" if unpriced_steps else shown


def timeline(events: Iterable[Event]) -> list[str]:
    """The run as a timeline for ``gm replay``: steps, tool calls, results, patches, checkpoints."""
    lines: list[str] = []
    step = 0
    for event in events:
        data = event.data
        prefix = f"{event.seq:>6}  "
        match data:
            case ModelResponse():
                step += 1
                text = f"  “{_short(data.text, 100)}”" if data.text.strip() else ""
                lines.append(f"{prefix}step {step}{text}")
            case ToolCalled():
                lines.append(f"{prefix}  → {data.name}({_args(data.args)})")
            case ToolReturned():
                lines.append(f"{prefix}    {'✓' if data.ok else '✗'} {_short(data.output, 100)}")
            case PatchApplied() | PatchReverted() | PatchReapplied():
                verb = {
                    "patch.applied": "patch",
                    "patch.reverted": "reverted",
                    "patch.reapplied": "re-applied",
                }[data.kind]
                files = ", ".join(f"{f.op} {f.path}" for f in data.files) or "(no change)"
                lines.append(f"{prefix}    {verb}: {files}")
            case PatchConflict():
                lines.append(f"{prefix}    conflict: " + ", ".join(m.path for m in data.mismatches))
            case JobAmbiguous():
                lines.append(f"{prefix}    ? outcome unknown ({data.job_kind})")
            case CheckpointSaved():
                lines.append(
                    f"{prefix}  ◆ checkpoint after seq {data.upto_seq}: {data.state_hash[:16]}"
                )
            case RunForked():
                lines.append(f"{prefix}fork of {data.parent_id} at seq {data.fork_seq}")
            case RunResumed():
                lines.append(f"{prefix}resumed (was {data.status})")
            case RunFinished():
                lines.append(
                    f"{prefix}{data.status}: {_short(data.summary or data.error or '', 100)}"
                )
            case _:
                pass
    return lines


def _step_lines(step: StepView | None) -> list[str]:
    if step is None:
        return ["    (no such step: the run had ended)"]
    lines = [f"    “{_short(step.text, 100)}”"] if step.text.strip() else []
    for name, args, ok, output in step.calls:
        mark = "·" if ok is None else "✓" if ok else "✗"
        lines.append(f"    → {name}({_args(args)})")
        lines.append(f"      {mark} {_short(output, 100)}")
    return lines


def _calls_from(run: RunSummary, first: int) -> str:
    """The tool calls of ``run`` from step ``first`` on: how many of each, how many failed."""
    counts: dict[str, int] = {}
    failed = 0
    for step in run.steps[first - 1 :]:
        for name, _, ok, _ in step.calls:
            counts[name] = counts.get(name, 0) + 1
            failed += ok is False
    if not counts:
        return "no tool calls"
    calls = ", ".join(f"{name} ×{n}" for name, n in counts.items())
    return f"{calls} ({failed} failed)"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _side(run: RunSummary) -> str:
    tokens = f"{run.input_tokens} in + {run.output_tokens} out tokens"
    return f"{run.run_id}  {run.status:<9} {len(run.steps):>3} steps  {tokens}  {run.model}"


def comparison_lines(result: Comparison) -> list[str]:
    """``gm compare``: both runs, the first differing step side by side, their endings."""
    a, b = result.a, result.b
    lines = [f"A  {_side(a)}", f"B  {_side(b)}"]
    if result.diverged_at is None:
        lines.append(f"steps: the same {len(a.steps)} steps (moves and results)")
    else:
        n = result.diverged_at
        what = "moves" if result.moves_differ else "tool results"
        same = f"the same up to step {n - 1}; " if n > 1 else ""
        lines.append(f"steps: {same}the {what} differ at step {n}")
        for label, run in (("A", a), ("B", b)):
            lines.append(f"  {label} step {n}:")
            lines += _step_lines(run.steps[n - 1] if n <= len(run.steps) else None)
        extra_a, extra_b = max(len(a.steps) - n, 0), max(len(b.steps) - n, 0)
        lines.append(f"  after it: A took {_count(extra_a, 'more step')}, B {extra_b}")
        for label, run in (("A", a), ("B", b)):
            lines.append(f"  {label} from step {n}: {_calls_from(run, n)}")
    for label, run in (("A", a), ("B", b)):
        lines.append(f"{label} ended {run.status}: {_short(run.summary or run.error or '', 100)}")
    return lines
