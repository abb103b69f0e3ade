"""The kernel: a run's state as a pure fold, the loop that drives it, and task files."""

from __future__ import annotations

from gm_agent.kernel._run import run_task
from gm_agent.kernel.context import build_request
from gm_agent.kernel.loop import EXIT_CODES, EventObserver, Kernel, RunOutcome, create_run
from gm_agent.kernel.state import (
    TERMINAL,
    TRANSITIONS,
    RunState,
    Turn,
    check_transition,
    evolve,
    fold,
)
from gm_agent.kernel.task import TaskSpec, load_task, parse_task

__all__ = [
    "EXIT_CODES",
    "TERMINAL",
    "TRANSITIONS",
    "EventObserver",
    "Kernel",
    "RunOutcome",
    "RunState",
    "TaskSpec",
    "Turn",
    "build_request",
    "check_transition",
    "create_run",
    "evolve",
    "fold",
    "load_task",
    "parse_task",
    "run_task",
]
