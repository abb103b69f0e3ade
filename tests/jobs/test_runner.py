"""The job runner: intent before, result after, retries for retryable failures only."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

import httpx
import pytest

from gm_agent.clock import FakeClock
from gm_agent.errors import ModelConnectionError, ModelHTTPError
from gm_agent.events import JOB_OUTPUT_CAP_BYTES, AnyEventData, JobAttemptFailed, JobResult
from gm_agent.jobs import JobOutcome, JobRunner, JobSpec, RetryPolicy
from gm_agent.llm.openai import retry_after

pytestmark = pytest.mark.anyio

SPEC = JobSpec(job_id="J", key="R/1/0/abc", kind="model", args={"model": "m"}, idempotent=True)


class Recorder:
    def __init__(self) -> None:
        self.events: list[AnyEventData] = []
        self.blobs: list[bytes] = []

    async def __call__(self, datas: Sequence[AnyEventData], blobs: Sequence[bytes]) -> None:
        self.events.extend(datas)
        self.blobs.extend(blobs)

    def kinds(self) -> list[str]:
        return [d.kind for d in self.events]


def failing(*errors: Exception, then: JobOutcome | None = None):
    remaining = list(errors)

    async def effect() -> JobOutcome:
        if remaining:
            raise remaining.pop(0)
        return then or JobOutcome(ok=True, output="fine")

    return effect


async def test_retryable_failures_are_retried_with_each_attempt_journaled() -> None:
    clock, recorder = FakeClock(), Recorder()
    runner = JobRunner(recorder, clock, rng=random.Random(7))
    outcome = await runner.run(
        SPEC, failing(ModelConnectionError("refused"), ModelHTTPError("p", 503, "busy"))
    )
    assert outcome.ok
    assert recorder.kinds() == [
        "job.intent",
        "job.attempt_failed",
        "job.attempt_failed",
        "job.result",
    ]
    first, second = [e for e in recorder.events if isinstance(e, JobAttemptFailed)]
    assert (first.attempt, second.attempt) == (1, 2)
    assert (
        0 <= first.retry_in_ms <= 1000 and 0 <= second.retry_in_ms <= 2000
    )  # full jitter, doubling
    result = recorder.events[-1]
    assert isinstance(result, JobResult) and result.attempts == 3
    assert clock.monotonic() == pytest.approx(
        (first.retry_in_ms + second.retry_in_ms) / 1000, abs=0.002
    )


async def test_retry_after_is_honoured() -> None:
    clock, recorder = FakeClock(), Recorder()
    runner = JobRunner(recorder, clock)
    await runner.run(SPEC, failing(ModelHTTPError("p", 429, "slow down", retry_after_s=7.0)))
    (failed,) = [e for e in recorder.events if isinstance(e, JobAttemptFailed)]
    assert failed.retry_in_ms == 7000 and clock.monotonic() == 7.0


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_client_errors_are_not_retried(status: int) -> None:
    recorder = Recorder()
    outcome = await JobRunner(recorder, FakeClock()).run(
        SPEC, failing(ModelHTTPError("p", status, "no"))
    )
    assert not outcome.ok and f"HTTP {status}" in (outcome.error or "")
    assert recorder.kinds() == ["job.intent", "job.result"]


async def test_attempts_are_bounded() -> None:
    recorder = Recorder()
    policy = RetryPolicy(max_attempts=3)
    errors = [ModelHTTPError("p", 500, "down") for _ in range(5)]
    outcome = await JobRunner(recorder, FakeClock(), retry=policy).run(SPEC, failing(*errors))
    assert not outcome.ok
    assert recorder.kinds().count("job.attempt_failed") == 2
    result = recorder.events[-1]
    assert isinstance(result, JobResult) and result.attempts == 3


async def test_long_output_goes_to_a_blob_and_the_event_keeps_a_truncated_copy() -> None:
    recorder = Recorder()
    long = "x" * (JOB_OUTPUT_CAP_BYTES * 3)
    await JobRunner(recorder, FakeClock()).run(SPEC, failing(then=JobOutcome(ok=True, output=long)))
    result = recorder.events[-1]
    assert isinstance(result, JobResult)
    assert result.output_blob == hashlib.sha256(long.encode()).hexdigest()
    assert recorder.blobs == [long.encode()]
    assert (
        len(result.output.encode()) < JOB_OUTPUT_CAP_BYTES + 100
        and "more bytes in the output blob" in result.output
    )


async def test_an_intent_already_committed_is_not_written_again() -> None:
    recorder = Recorder()
    await JobRunner(recorder, FakeClock()).run(SPEC, failing(), intent_committed=True)
    assert recorder.kinds() == ["job.result"]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "12"}, 12.0),
        (
            {
                "retry-after": "Wed, 21 Oct 2026 07:28:30 GMT",
                "date": "Wed, 21 Oct 2026 07:28:00 GMT",
            },
            30.0,
        ),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_header_parsing(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after(httpx.Headers(headers)) == expected


async def test_an_attempt_past_its_timeout_is_stopped_and_retried() -> None:
    from dataclasses import replace

    import anyio

    calls: list[int] = []

    async def slow_then_fast() -> JobOutcome:
        calls.append(1)
        if len(calls) == 1:
            await anyio.sleep(10)
        return JobOutcome(ok=True, output="second try")

    recorder = Recorder()
    spec = replace(SPEC, timeout_s=0.05)
    outcome = await JobRunner(recorder, FakeClock()).run(spec, slow_then_fast)
    assert (outcome.ok, outcome.output, len(calls)) == (True, "second try", 2)
    (failed,) = [e for e in recorder.events if isinstance(e, JobAttemptFailed)]
    assert "timed out after 0.05 s" in failed.error
