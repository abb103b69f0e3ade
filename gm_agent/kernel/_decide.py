"""What the kernel does next, decided from a run's folded state alone.

:func:`next_action` is pure, so the loop that executes a run and ``gm replay
--recorded`` that checks a recorded run ask the very same question.
"""

from __future__ import annotations

from dataclasses import dataclass

from gm_agent.events import TerminalStatus, ToolCallData
from gm_agent.jobs import args_digest, idempotency_key
from gm_agent.kernel.state import RunState
from gm_agent.tools import ShellCommand

__all__ = [
    "CANCELLED",
    "EMPTY_REPLY",
    "INTERRUPTED",
    "LOOP_REPEATS",
    "MAX_MALFORMED_MOVES",
    "SKIPPED",
    "Action",
    "CallTool",
    "Correct",
    "EndRun",
    "Pause",
    "RequestMove",
    "SkipCall",
    "budget_reason",
    "cancel_error",
    "loop_reason",
    "malformed_streak",
    "model_attempts",
    "model_job_key",
    "next_action",
    "shell_job_key",
]


@dataclass(frozen=True)
class CallTool:
    """Carry out ``call``, the ``index``-th (1-based) tool call of the latest move."""

    index: int
    call: ToolCallData


@dataclass(frozen=True)
class EndRun:
    """End the run as ``status`` with a summary (success) or an error."""

    status: TerminalStatus
    summary: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class RequestMove:
    """Ask the model for the move of step ``step`` (1-based)."""

    step: int


@dataclass(frozen=True)
class SkipCall:
    """Answer ``call`` without running it: a user message cut in (``preempt``)."""

    index: int
    call: ToolCallData


@dataclass(frozen=True)
class Pause:
    """Pause the run at this safe point (``gm interrupt``)."""

    reason: str


@dataclass(frozen=True)
class Correct:
    """Tell the model its last move was empty (as a ``user.message`` from the kernel)."""

    text: str


Action = CallTool | Correct | EndRun | Pause | RequestMove | SkipCall

SKIPPED = "not run: the user sent a message first (see below); call it again if it is still needed"
CANCELLED = "cancelled by the user"
INTERRUPTED = "interrupted by the user"

MAX_MALFORMED_MOVES = 3
"""Malformed moves in a row (empty, or every tool call unknown or with arguments
that are not valid JSON) after which the run fails instead of asking again."""

EMPTY_REPLY = (
    "(from gm) Your last reply was empty: no text and no tool call. Call a tool to "
    "go on, or call `finish` with a summary if the task is done."
)


def next_action(state: RunState) -> Action:
    """The next action for a ``running`` run in ``state``.

    In order: finish a cancelled run; pause an interrupted one; carry out the
    latest move's first tool call without a result (or skip it when a user
    message cuts in, unless it started already); fail
    the run after :data:`MAX_MALFORMED_MOVES` malformed moves in a row; end the run
    when the latest move is text only (its summary); tell the model when that move
    was empty; otherwise ask for a move (the loop checks the budget first, see
    :func:`budget_reason`).
    """
    if state.cancel_requested:
        return EndRun("cancelled", error=cancel_error(state.cancel_reason))
    if state.interrupt_requested:
        return Pause(INTERRUPTED)
    pending = state.pending_calls()
    if pending:
        index, call = pending[0]
        if state.preempt and call.call_id not in state.open_calls:
            return SkipCall(index, call)
        return CallTool(index, call)
    streak = malformed_streak(state)
    if streak >= MAX_MALFORMED_MOVES:
        return EndRun(
            "failed",
            error=(
                f"the model sent {streak} malformed replies in a row (empty, an unknown "
                "tool, or arguments that are not valid JSON); `gm log "
                f"{state.run_id}` shows them. A stronger model may do better."
            ),
        )
    last = state.conversation[-1] if state.conversation else None
    if last is not None and last.role == "assistant":
        if last.text.strip():
            return EndRun("succeeded", summary=last.text.strip())
        return Correct(EMPTY_REPLY)
    return RequestMove(state.step + 1)


def cancel_error(reason: str | None) -> str:
    """The error a cancelled run finishes with."""
    return f"{CANCELLED}: {reason}" if reason else CANCELLED


def malformed_streak(state: RunState) -> int:
    """How many of the latest moves, in a row, were malformed: empty, or with tool
    calls that all came back ``malformed``. Walks back only as far as the streak."""
    malformed_results: dict[str, bool] = {}
    streak = 0
    for turn in reversed(state.conversation):
        if turn.role == "tool" and turn.call_id is not None:
            malformed_results[turn.call_id] = turn.malformed
        elif turn.role == "assistant":
            empty = not turn.text.strip() and not turn.tool_calls
            bad_calls = bool(turn.tool_calls) and all(
                malformed_results.get(c.call_id, False) for c in turn.tool_calls
            )
            if not (empty or bad_calls):
                break
            streak += 1
    return streak


_RAISE = {
    "max_steps": "--max-steps N",
    "max_input_tokens": "--budget max_input_tokens=N",
    "max_output_tokens": "--budget max_output_tokens=N",
    "max_tool_calls": "--budget max_tool_calls=N",
    "max_wall_s": "--budget max_wall_s=SECONDS",
    "max_cost_usd": "--budget max_cost_usd=DOLLARS",
}


def budget_reason(state: RunState, elapsed_s: float) -> str | None:
    """Why the run may not ask for another move, or ``None`` while within its limits.

    Args:
        state: the run (``max_steps``, ``budget`` and what it used so far).
        elapsed_s: seconds since the run was created.
    """
    budget = state.budget
    tool_calls = budget.get("max_tool_calls")
    used = {
        "max_steps": (state.step + state.given_steps, state.max_steps),  # children's too
        "max_input_tokens": (state.usage.input_tokens, budget.get("max_input_tokens")),
        "max_output_tokens": (state.usage.output_tokens, budget.get("max_output_tokens")),
        "max_tool_calls": (  # counted only when limited: it walks the whole conversation
            sum(1 for t in state.conversation if t.role == "tool")
            if isinstance(tool_calls, int | float)
            else 0,
            tool_calls,
        ),
        "max_wall_s": (elapsed_s, budget.get("max_wall_s")),
        "max_cost_usd": (state.cost_usd, budget.get("max_cost_usd")),
    }
    for name, (spent, limit) in used.items():
        if isinstance(limit, int | float) and spent >= limit:
            shown = (
                f"${spent:.4f}"
                if name == "max_cost_usd"
                else f"{spent:.0f}"
                if isinstance(spent, float)
                else str(spent)
            )
            return (
                f"budget: {name}={limit} reached ({shown} used); "
                f"raise it with `gm resume {state.run_id} {_RAISE[name]}`"
            )
    return None


def model_job_key(run_id: str, step: int, model: str, attempt: int = 0) -> str:
    """The idempotency key of step ``step``'s model request to ``model``.

    ``attempt`` counts the step's earlier requests that were stopped (by an
    interrupt, a preempting message or Ctrl-C): the next one may ask with a
    different conversation, so it must not share their key. A request cut off by
    a crash is sent again under its own key, unchanged.
    """
    args: dict[str, object] = {"model": model}
    if attempt:
        args["attempt"] = attempt
    return idempotency_key(run_id, step, 0, args_digest(args))


def model_attempts(state: RunState, step: int) -> int:
    """How many model requests of step ``step`` were stopped (``job.cancelled``).

    Walks back from the newest job and stops at a model request of an earlier
    step (a run asks for step N+1 only after step N's response), so it costs
    what the latest step holds, not the whole run.
    """
    stopped = 0
    for job in reversed(state.jobs):
        if job.job_kind != "model":
            continue
        asked = job.args.get("step")
        if isinstance(asked, int) and asked < step:
            break
        if asked == step and job.status == "cancelled":
            stopped += 1
    return stopped


def shell_job_key(run_id: str, step: int, index: int, command: ShellCommand) -> str:
    """The idempotency key of the shell command of call ``index`` in step ``step``."""
    args: dict[str, object] = {"command": command.command, "timeout_s": command.timeout_s}
    return idempotency_key(run_id, step, index, args_digest(args))


LOOP_REPEATS = 3
"""The same call with the same arguments and the same result this many times in a
row is a loop: the run stops and waits for a person."""


def loop_reason(state: RunState) -> str | None:
    """Why the run looks stuck, or ``None``: its last :data:`LOOP_REPEATS` tool calls
    were the same call, with the same arguments and the same result, the streak
    just reached that length (so a resumed run is not stopped again at once)."""
    recent = _last_calls(state, LOOP_REPEATS + 1)
    if len(recent) < LOOP_REPEATS:
        return None
    last = recent[-1]
    streak = 0
    for call in reversed(recent):
        if call != last:
            break
        streak += 1
    if streak != LOOP_REPEATS:
        return None
    name, args, _, _ = last
    return (
        f"loop: {name}({args}) gave the same result {LOOP_REPEATS} times in a row; "
        f"look at the run (`gm log {state.run_id}`), then `gm resume {state.run_id}` "
        "to let it go on, or `gm fork` it with a message"
    )


def _last_calls(state: RunState, count: int) -> list[tuple[str, object, str, bool]]:
    """The last ``count`` answered tool calls as (name, args, result, ok), oldest first.

    Walks back from the end of the conversation, so the check before each model
    request costs what the last few steps hold, not the whole run.
    """
    results: dict[str, tuple[str, bool]] = {}
    calls: list[tuple[str, object, str, bool]] = []
    for turn in reversed(state.conversation):
        if turn.role == "tool" and turn.call_id is not None:
            results[turn.call_id] = (turn.text, turn.ok)
        elif turn.role == "assistant":
            for call in reversed(turn.tool_calls):
                if call.call_id in results:
                    text, ok = results[call.call_id]
                    calls.append((call.name, call.args, text, ok))
            if len(calls) >= count:
                break
    return list(reversed(calls[:count]))
