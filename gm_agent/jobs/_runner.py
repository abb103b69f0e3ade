"""The job runner: intent before, result after, retries and cancellation in one place.

Retries, backoff and cancellation live here, never inside individual jobs. An
effect signals a failure worth retrying by raising a :class:`GmAgentError` whose
``retryable`` is true (connection errors, HTTP 408/429/5xx/529); the runner
waits ``retry_after_s`` when the server said so, else an exponentially growing
delay with full jitter, journaling each failed attempt as ``job.attempt_failed``.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio

from gm_agent.clock import Clock
from gm_agent.errors import GmAgentError, JobTimeout
from gm_agent.events import (
    JOB_OUTPUT_CAP_BYTES,
    AnyEventData,
    JobAttemptFailed,
    JobCancelled,
    JobIntent,
    JobResult,
)
from gm_agent.faults import crash_point
from gm_agent.jobs._protocol import JobOutcome, JobSpec, args_digest

__all__ = ["Emit", "JobRunner", "RetryPolicy"]

Emit = Callable[[Sequence[AnyEventData], Sequence[bytes]], Awaitable[None]]
"""Commit event payloads (and content blobs) to the run's journal in one transaction."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a retryable failure.

    The n-th retry waits a uniform random time in ``[0, min(max_delay_s,
    base_delay_s * 2**(n-1))]`` ("full jitter", AWS Architecture Blog,
    "Exponential Backoff And Jitter", 2015), or exactly what the server asked
    for in ``Retry-After``, capped at ``max_retry_after_s``.
    """

    max_attempts: int = 4
    base_delay_s: float = 1.0
    max_delay_s: float = 30.0
    max_retry_after_s: float = 120.0

    def delay_s(self, attempt: int, retry_after_s: float | None, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after_s is not None:
            return min(retry_after_s, self.max_retry_after_s)
        return rng.uniform(0, min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)))


def _cap(output: str) -> tuple[str, bytes | None]:
    """The output an event keeps, and the whole output as a blob when it had to be cut."""
    data = output.encode()
    if len(data) <= JOB_OUTPUT_CAP_BYTES:
        return output, None
    kept = data[:JOB_OUTPUT_CAP_BYTES].decode("utf-8", "ignore")
    return f"{kept}\n[... {len(data) - len(kept.encode())} more bytes in the output blob]", data


class JobRunner:
    """Runs jobs for one run under the job protocol.

    Args:
        emit: commits events to the run.
        clock: for durations and backoff sleeps.
        retry: the retry policy.
        rng: randomness for jitter (seeded in tests).
    """

    def __init__(
        self,
        emit: Emit,
        clock: Clock,
        *,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._emit = emit
        self._clock = clock
        self._retry = retry or RetryPolicy()
        self._rng = rng or random.Random()

    def intent(self, spec: JobSpec) -> JobIntent:
        """The ``job.intent`` event of ``spec``."""
        return JobIntent(
            job_id=spec.job_id,
            key=spec.key,
            job_kind=spec.kind,
            args_digest=args_digest(spec.args),
            idempotent=spec.idempotent,
            args=spec.args,
            call_id=spec.call_id,
            before_snapshot=spec.before_snapshot,
        )

    async def run(
        self,
        spec: JobSpec,
        effect: Callable[[], Awaitable[JobOutcome]],
        *,
        intent_committed: bool = False,
    ) -> JobOutcome:
        """Run one job: commit its intent, run the effect (with retries), commit its result.

        Args:
            spec: the job.
            effect: the side effect; raises ``GmAgentError`` to fail (retried when
                ``retryable``), returns a :class:`JobOutcome` otherwise.
            intent_committed: the intent is already in the journal (recovery is
                re-executing an idempotent job under the same key).

        Returns:
            The outcome, with ``attempts`` set. ``outcome.extra`` events and the
            ``job.result`` were committed together, in that order.

        Cancellation while the effect runs records ``job.cancelled`` and propagates.
        """
        if not intent_committed:
            await self._emit([self.intent(spec)], ())
            crash_point("job.after_intent")
        started = self._clock.monotonic()
        attempt = 1
        try:
            while True:
                try:
                    outcome = await self._attempt(spec, effect)
                    break
                except GmAgentError as exc:
                    if not exc.retryable or attempt >= self._retry.max_attempts:
                        outcome = JobOutcome(ok=False, error=str(exc), outage=exc.outage)
                        break
                    delay = self._retry.delay_s(attempt, exc.retry_after_s, self._rng)
                    await self._emit([self._attempt_failed(spec, attempt, str(exc), delay)], ())
                    await self._clock.sleep(delay)
                    attempt += 1
        except anyio.get_cancelled_exc_class():  # while it ran, or between attempts
            with anyio.CancelScope(shield=True):
                reason = "the run was interrupted while the job ran; it may have partly run"
                await self._emit([self._cancelled(spec, reason)], ())
            raise
        crash_point("job.after_effect")
        output, blob = _cap(outcome.output)
        result = JobResult(
            job_id=spec.job_id,
            key=spec.key,
            job_kind=spec.kind,
            ok=outcome.ok,
            output=output,
            error=outcome.error,
            exit_code=outcome.exit_code,
            duration_ms=round((self._clock.monotonic() - started) * 1000),
            attempts=attempt,
            output_blob=None if blob is None else _sha256(blob),
        )
        await self._emit(
            [*outcome.extra, result], (*outcome.blobs, *(() if blob is None else (blob,)))
        )
        return outcome

    async def _attempt(
        self, spec: JobSpec, effect: Callable[[], Awaitable[JobOutcome]]
    ) -> JobOutcome:
        """One attempt, bounded by the job's timeout (a timeout is retryable)."""
        if spec.timeout_s is None:
            return await effect()
        with anyio.move_on_after(spec.timeout_s) as scope:
            return await effect()
        assert scope.cancelled_caught
        raise JobTimeout(f"{spec.kind} job timed out after {spec.timeout_s:g} s")

    @staticmethod
    def _attempt_failed(
        spec: JobSpec, attempt: int, error: str, delay_s: float
    ) -> JobAttemptFailed:
        return JobAttemptFailed(
            job_id=spec.job_id,
            key=spec.key,
            job_kind=spec.kind,
            attempt=attempt,
            error=error,
            retry_in_ms=round(delay_s * 1000),
        )

    @staticmethod
    def _cancelled(spec: JobSpec, reason: str) -> JobCancelled:
        return JobCancelled(job_id=spec.job_id, key=spec.key, job_kind=spec.kind, reason=reason)


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
