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
    "Action",
    "CallTool",
    "EndRun",
    "RequestMove",
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


Action = CallTool | EndRun | RequestMove


def next_action(state: RunState) -> Action:
    """The next action for a ``running`` run in ``state``.

    In order: carry out the latest move's first tool call without a result; end
    the run when the latest move has no tool calls (its text is the summary; an
    empty move fails); stop at the step budget; otherwise ask for a move.
    """
    pending = state.pending_calls()
    if pending:
        index, call = pending[0]
        return CallTool(index, call)
    last = state.conversation[-1] if state.conversation else None
    if last is not None and last.role == "assistant":
        if last.text.strip():
            return EndRun("succeeded", summary=last.text.strip())
        return EndRun("failed", error="the model returned an empty reply (no text, no tool call)")
    if state.step >= state.max_steps:
        return EndRun(
            "failed",
            error=f"the run reached max_steps={state.max_steps} without finishing; "
            "raise it with --max-steps or `max_steps:` in the task",
        )
    return RequestMove(state.step + 1)


def model_job_key(run_id: str, step: int, model: str) -> str:
    """The idempotency key of step ``step``'s model request to ``model``."""
    return idempotency_key(run_id, step, 0, args_digest({"model": model}))


def shell_job_key(run_id: str, step: int, index: int, command: ShellCommand) -> str:
    """The idempotency key of the shell command of call ``index`` in step ``step``."""
    args: dict[str, object] = {"command": command.command, "timeout_s": command.timeout_s}
    return idempotency_key(run_id, step, index, args_digest(args))
