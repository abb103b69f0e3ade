"""What the TUI's keys do: the CLI's own library calls, each a journaled command.

Answers, messages, interrupts, cancels and undos append their events through
the same functions as ``gm approve``, ``gm send``, ``gm interrupt``, ``gm cancel``
and ``gm undo``. Resuming and forking execute a run, so they start a detached
``gm resume`` / ``gm fork`` process (:mod:`gm_agent.tui._spawn`; its output in
``.gm/logs/``): the run goes on when the TUI closes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from gm_agent.kernel import (
    answer_approval,
    cancel_run,
    interrupt_run,
    send_message,
    undo_run,
)
from gm_agent.tui._spawn import Child, Children

__all__ = [
    "approve",
    "cancel",
    "deny",
    "fork",
    "interrupt",
    "resume",
    "send",
    "start_run",
    "undo",
]


async def approve(workspace: Path, run_id: str, environ: Mapping[str, str], always: bool) -> str:
    """Approve the call ``run_id`` waits for (``always``: for the rest of the run)."""
    answered = await answer_approval(
        workspace, run_id, environ, grant=True, always="run" if always else None
    )
    then = "" if answered.live else "; no process runs it: press r to resume"
    return f"approved {answered.approval.name}{then}"


async def deny(workspace: Path, run_id: str, environ: Mapping[str, str], reason: str) -> str:
    """Deny the call ``run_id`` waits for; the model is told ``reason``."""
    answered = await answer_approval(workspace, run_id, environ, grant=False, reason=reason or None)
    then = "" if answered.live else "; no process runs it: press r to resume"
    return f"denied {answered.approval.name}{then}"


async def send(
    workspace: Path, run_id: str, environ: Mapping[str, str], text: str, preempt: bool
) -> str:
    """Send ``text`` to the run (``preempt``: cut in at the next safe point)."""
    sent = await send_message(workspace, run_id, environ, text, preempt=preempt)
    return "sent" if sent.live else f"sent; the run takes it when resumed ({sent.status})"


async def interrupt(workspace: Path, run_id: str, environ: Mapping[str, str]) -> str:
    """Pause the live run at its next safe point."""
    done = await interrupt_run(workspace, run_id, environ, reason="from the TUI")
    return f"run {done.status}"


async def cancel(workspace: Path, run_id: str, environ: Mapping[str, str]) -> str:
    """Cancel the run."""
    done = await cancel_run(workspace, run_id, environ, reason="from the TUI")
    return f"run {done.status}"


async def undo(
    workspace: Path, run_id: str, environ: Mapping[str, str], patch: str | None = None
) -> str:
    """Revert the run's changes (only patch ``patch``, when given)."""
    report = await undo_run(workspace, run_id, environ, patch=patch)
    return f"undone: {len(report.patches)} patch(es), {len(report.files)} file(s)"


def start_run(children: Children, task: Path, options: list[str], run_id: str) -> Child:
    """Start ``gm run TASK --run-id RUN_ID`` detached, waiting for approvals from the
    TUI (``--wait-for-approval``); its output goes to ``.gm/logs/run-RUN_ID.log``.

    Raises:
        OSError: the log or the process could not be created.
    """
    args = ["run", str(task.resolve()), *options, "--run-id", run_id, "--wait-for-approval"]
    return children.start(args, f"run-{run_id}")


async def resume(children: Children, run_id: str, tag: str) -> str:
    """Start ``gm resume RUN`` detached, waiting for approvals from the TUI; says
    where its output goes (a log named with ``tag``, a fresh id)."""
    child = children.start(["resume", run_id, "--wait-for-approval"], f"resume-{run_id}-{tag}")
    return f"resuming (output in {_shown(children, child)})"


async def fork(children: Children, run_id: str, at_seq: int, tag: str) -> str:
    """Start ``gm fork RUN --at SEQ`` detached, waiting for approvals from the TUI;
    says where its output goes (a log named with ``tag``, a fresh id)."""
    args = ["fork", run_id, "--at", str(at_seq), "--wait-for-approval"]
    child = children.start(args, f"fork-{run_id}-{at_seq}-{tag}")
    return f"forking at seq {at_seq} (output in {_shown(children, child)})"


def _shown(children: Children, child: Child) -> str:
    return str(child.log.relative_to(children.workspace))
