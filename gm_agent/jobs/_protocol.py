"""What a job is: its identity (idempotency key), its spec and its outcome.

A job is one side effect (a model request, a shell command). The runner
(:mod:`gm_agent.jobs._runner`) commits ``job.intent`` before the effect and
``job.result`` after it, together with the events the effect produced (for a
model request, ``model.response``), so nothing depends on an unrecorded result.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import JsonValue

from gm_agent.events import AnyEventData

__all__ = ["JobOutcome", "JobSpec", "args_digest", "idempotency_key"]


def args_digest(args: Mapping[str, Any]) -> str:
    """Hex sha256 of the canonical JSON of ``args`` (sorted keys, no spaces, UTF-8)."""
    canonical = json.dumps(args, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_key(run_id: str, step: int, call_index: int, digest: str) -> str:
    """A job's stable identity: ``{run_id}/{step}/{call_index}/{digest[:16]}``.

    The same call of the same step with the same arguments always gets the
    same key (ARCHITECTURE.md, "idempotency key"); the model request of a step
    uses ``call_index`` 0, its tool calls 1, 2, ...
    """
    return f"{run_id}/{step}/{call_index}/{digest[:16]}"


@dataclass(frozen=True)
class JobSpec:
    """What a job is, before it runs.

    Attributes:
        job_id: unique id of this job (a ULID).
        key: its idempotency key (:func:`idempotency_key`).
        kind: ``model``, ``shell``, ...
        args: JSON-safe arguments, journaled with the intent.
        idempotent: whether running it twice is harmless.
        call_id: the tool call it carries out, if any.
        before_snapshot: blob of the workspace manifest taken just before (shell jobs).
        timeout_s: seconds one attempt may take before the runner stops it (a
            retryable failure); ``None``: the job bounds itself (a shell command
            stops its own process group at its timeout and keeps its output).
    """

    job_id: str
    key: str
    kind: str
    args: dict[str, JsonValue]
    idempotent: bool
    call_id: str | None = None
    before_snapshot: str | None = None
    timeout_s: float | None = None


@dataclass(frozen=True)
class JobOutcome:
    """What an effect reports.

    ``extra`` events are committed just before ``job.result``, in the same
    transaction, together with the content ``blobs`` they refer to. ``outage``:
    the job failed because its provider is failing (see ``GmAgentError.outage``).
    """

    ok: bool
    output: str = ""
    error: str | None = None
    exit_code: int | None = None
    extra: tuple[AnyEventData, ...] = field(default=())
    blobs: tuple[bytes, ...] = field(default=())
    outage: bool = False
