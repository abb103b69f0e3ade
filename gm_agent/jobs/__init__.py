"""Jobs: every side effect, recorded as ``job.intent`` before and ``job.result`` after."""

from __future__ import annotations

from gm_agent.jobs._protocol import (
    Emit,
    JobOutcome,
    JobSpec,
    args_digest,
    idempotency_key,
    run_job,
)
from gm_agent.jobs.shell import ShellResult, run_shell, scrub_env

__all__ = [
    "Emit",
    "JobOutcome",
    "JobSpec",
    "ShellResult",
    "args_digest",
    "idempotency_key",
    "run_job",
    "run_shell",
    "scrub_env",
]
