"""The job protocol: intent committed before the effect, result after it.

A job is one side effect (a model request, a shell command). :func:`run_job`
commits ``job.intent``, runs the effect, then commits ``job.result`` together
with the events the effect produced (for a model request, ``model.response``),
so nothing can depend on a result that is not yet durable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import JsonValue

from gm_agent.clock import Clock
from gm_agent.errors import GmAgentError
from gm_agent.events import AnyEventData, JobIntent, JobResult

__all__ = ["Emit", "JobOutcome", "JobSpec", "args_digest", "idempotency_key", "run_job"]

Emit = Callable[[Sequence[AnyEventData]], Awaitable[None]]
"""Commit event payloads to the run's journal, in one transaction, in order."""


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
    """

    job_id: str
    key: str
    kind: str
    args: dict[str, JsonValue]
    idempotent: bool


@dataclass(frozen=True)
class JobOutcome:
    """What an effect reports. ``extra`` events are committed just before ``job.result``."""

    ok: bool
    output: str = ""
    error: str | None = None
    exit_code: int | None = None
    extra: tuple[AnyEventData, ...] = field(default=())


async def run_job(
    spec: JobSpec, effect: Callable[[], Awaitable[JobOutcome]], emit: Emit, clock: Clock
) -> JobOutcome:
    """Run one job under the protocol.

    Commits ``job.intent``, awaits ``effect``, then commits ``outcome.extra`` and
    ``job.result`` in one transaction. A :class:`GmAgentError` from the effect
    becomes a failed outcome; any other exception (a bug, a cancellation)
    propagates with the intent left open, for recovery to reconcile.
    """
    await emit(
        [
            JobIntent(
                job_id=spec.job_id,
                key=spec.key,
                job_kind=spec.kind,
                args_digest=args_digest(spec.args),
                idempotent=spec.idempotent,
                args=spec.args,
            )
        ]
    )
    started = clock.monotonic()
    try:
        outcome = await effect()
    except GmAgentError as exc:
        outcome = JobOutcome(ok=False, error=str(exc))
    result = JobResult(
        job_id=spec.job_id,
        key=spec.key,
        job_kind=spec.kind,
        ok=outcome.ok,
        output=outcome.output,
        error=outcome.error,
        exit_code=outcome.exit_code,
        duration_ms=round((clock.monotonic() - started) * 1000),
    )
    await emit([*outcome.extra, result])
    return outcome
