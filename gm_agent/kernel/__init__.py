"""The kernel: a run's state as a pure fold, the loop that drives it, and task files."""

from __future__ import annotations

from gm_agent.kernel._run import create_run, resumable_runs, resume_run, run_task
from gm_agent.kernel._undo import FileDiff, UndoReport, redo_run, run_diff, undo_run
from gm_agent.kernel.context import build_request
from gm_agent.kernel.loop import AMBIGUOUS_MESSAGE, EXIT_CODES, EventObserver, Kernel, RunOutcome
from gm_agent.kernel.state import (
    TERMINAL,
    TRANSITIONS,
    JobView,
    PatchView,
    RunState,
    Turn,
    check_transition,
    evolve,
    fold,
)
from gm_agent.kernel.task import TaskSpec, load_task, parse_task

__all__ = [
    "AMBIGUOUS_MESSAGE",
    "EXIT_CODES",
    "TERMINAL",
    "TRANSITIONS",
    "EventObserver",
    "FileDiff",
    "JobView",
    "Kernel",
    "PatchView",
    "RunOutcome",
    "RunState",
    "TaskSpec",
    "Turn",
    "UndoReport",
    "build_request",
    "check_transition",
    "create_run",
    "evolve",
    "fold",
    "load_task",
    "parse_task",
    "redo_run",
    "resumable_runs",
    "resume_run",
    "run_diff",
    "run_task",
    "undo_run",
]
