"""What the TUI's keys do: the CLI's own library calls, each a journaled command.

Answers, messages, interrupts, cancels and undos append their events through
the same functions as ``gm approve``, ``gm send``, ``gm interrupt``, ``gm cancel``
and ``gm undo``. Resuming and forking execute a run, so they start a detached
``gm resume`` / ``gm fork`` process (its output in ``.gm/logs/``): the run goes
on when the TUI closes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from gm_agent.kernel import (
    answer_approval,
    cancel_run,
    interrupt_run,
    send_message,
    undo_run,
)
from gm_agent.settings import GM_DIR

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
    workspace: Path, run_id: str, environ: Mapping[str, str], to_seq: int | None = None
) -> str:
    """Revert the run's changes (those after ``to_seq`` only, when given)."""
    report = await undo_run(workspace, run_id, environ, to_seq=to_seq)
    return f"undone: {len(report.patches)} patch(es), {len(report.files)} file(s)"


def start_run(workspace: Path, task: Path, options: list[str]) -> str:
    """Start ``gm run TASK`` in the background, waiting for approvals from the TUI
    (``--wait-for-approval``); where its output goes."""
    args = ["run", str(task.resolve()), *options, "--wait-for-approval"]
    return _detached(workspace, args, f"run-{task.stem}")


def _detached(workspace: Path, args: list[str], name: str) -> str:
    logs = workspace / GM_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    with log.open("ab") as out:
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gm_agent",
                "-C",
                str(workspace),
                *args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,  # not the TUI's: closing it leaves the run going
            env=dict(os.environ),
        )
    return str(log.relative_to(workspace))


async def resume(workspace: Path, run_id: str) -> str:
    """Start ``gm resume RUN`` in the background, waiting for approvals from the
    TUI; where its output goes."""
    log = _detached(workspace, ["resume", run_id, "--wait-for-approval"], f"resume-{run_id}")
    return f"resuming (output in {log})"


async def fork(workspace: Path, run_id: str, at_seq: int) -> str:
    """Start ``gm fork RUN --at SEQ`` in the background, waiting for approvals from
    the TUI; where its output goes."""
    args = ["fork", run_id, "--at", str(at_seq), "--wait-for-approval"]
    log = _detached(workspace, args, f"fork-{run_id}-{at_seq}")
    return f"forking at seq {at_seq} (output in {log})"
