"""Jobs: every side effect, recorded as ``job.intent`` before and ``job.result`` after."""

from __future__ import annotations

from gm_agent.jobs._protocol import JobOutcome, JobSpec, args_digest, idempotency_key
from gm_agent.jobs._runner import Emit, JobRunner, RetryPolicy
from gm_agent.jobs.sandbox import SandboxBackend, ShellSandbox, probe_sandbox
from gm_agent.jobs.shell import ShellResult, is_secret_name, run_shell, scrub_env

__all__ = [
    "Emit",
    "JobOutcome",
    "JobRunner",
    "JobSpec",
    "RetryPolicy",
    "SandboxBackend",
    "ShellResult",
    "ShellSandbox",
    "args_digest",
    "idempotency_key",
    "is_secret_name",
    "probe_sandbox",
    "run_shell",
    "scrub_env",
]
