"""The kernel: a run's state as a pure fold, the loop that drives it, checkpoints,
replay, fork and compare, and task files."""

from __future__ import annotations

from gm_agent.kernel._answer import Answered, answer_approval
from gm_agent.kernel._approvals import ApprovalMode
from gm_agent.kernel._checkpoint import history, load_state
from gm_agent.kernel._compare import Comparison, RunSummary, StepView, compare_runs
from gm_agent.kernel._decide import Action, CallTool, EndRun, RequestMove, next_action
from gm_agent.kernel._fork import fork_run
from gm_agent.kernel._replay import ReplayProblem, ReplayReport, replay_recorded, replay_run
from gm_agent.kernel._run import (
    RunPlan,
    checked_run_id,
    create_run,
    kernel_for,
    model_pool,
    plan_run,
    resumable_runs,
    resume_run,
    run_task,
)
from gm_agent.kernel._scheme_kernel import SchemeKernel, execute_scheme
from gm_agent.kernel._scheme_record import SchemeRecord, scheme_record_of
from gm_agent.kernel._scheme_run import create_scheme_run, plan_scheme, run_scheme, scheme_model
from gm_agent.kernel._steer import Steered, cancel_run, interrupt_run, send_message
from gm_agent.kernel._undo import FileDiff, UndoReport, redo_run, run_diff, undo_run
from gm_agent.kernel.context import build_request
from gm_agent.kernel.loop import AMBIGUOUS_MESSAGE, EXIT_CODES, EventObserver, Kernel, RunOutcome
from gm_agent.kernel.state import (
    TERMINAL,
    TRANSITIONS,
    Folder,
    JobView,
    PatchView,
    RunState,
    Turn,
    check_moves,
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
    "Action",
    "Answered",
    "ApprovalMode",
    "CallTool",
    "Comparison",
    "EndRun",
    "EventObserver",
    "FileDiff",
    "Folder",
    "JobView",
    "Kernel",
    "PatchView",
    "ReplayProblem",
    "ReplayReport",
    "RequestMove",
    "RunOutcome",
    "RunPlan",
    "RunState",
    "RunSummary",
    "SchemeKernel",
    "SchemeRecord",
    "Steered",
    "StepView",
    "TaskSpec",
    "Turn",
    "UndoReport",
    "answer_approval",
    "build_request",
    "cancel_run",
    "check_moves",
    "check_transition",
    "checked_run_id",
    "compare_runs",
    "create_run",
    "create_scheme_run",
    "evolve",
    "execute_scheme",
    "fold",
    "fork_run",
    "history",
    "interrupt_run",
    "kernel_for",
    "load_state",
    "load_task",
    "model_pool",
    "next_action",
    "parse_task",
    "plan_run",
    "plan_scheme",
    "redo_run",
    "replay_recorded",
    "replay_run",
    "resumable_runs",
    "resume_run",
    "run_diff",
    "run_scheme",
    "run_task",
    "scheme_model",
    "scheme_record_of",
    "send_message",
    "undo_run",
]
