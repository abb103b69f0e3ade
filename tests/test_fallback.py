"""Provider failures: a circuit breaker stops hammering a failing provider, and a
run with fallback models moves to the next one on an outage, journaling why."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gm_agent.errors import CircuitOpen, ModelConnectionError, ModelHTTPError
from gm_agent.llm import CircuitBreaker, FunctionModel, Guarded, Message, ModelRequest, Move
from tests.conftest import gm
from tests.helpers import JsonProvider, serving, write_script, write_task

ASK = ModelRequest(messages=(Message(role="user", text="hi"),))


class FakeNow:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_the_breaker_opens_after_consecutive_failures_and_tries_once_after_the_cooldown() -> None:
    now = FakeNow()
    breaker = CircuitBreaker(threshold=3, cooldown_s=30, now=now)
    for _ in range(2):
        breaker.failed()
    assert breaker.state == "closed"
    breaker.failed()
    assert breaker.state == "open"
    with pytest.raises(
        CircuitOpen, match=r"failed 3 times in a row; not asking it again for 30 s \(circuit open\)"
    ):
        breaker.check("anthropic:claude")
    now.t = 31
    assert breaker.state == "half-open"
    breaker.check("anthropic:claude")  # one trial goes through
    breaker.failed()
    assert breaker.state == "open"  # the trial failed: open again at once
    now.t = 62
    breaker.succeeded()
    assert breaker.state == "closed" and breaker.failures == 0


@pytest.mark.anyio
async def test_only_outages_count_against_a_provider() -> None:
    errors = iter([ModelHTTPError("m", 401, "bad key"), ModelConnectionError("down")])

    async def failing(request: ModelRequest) -> Move:
        raise next(errors)

    guarded = Guarded(FunctionModel(failing), CircuitBreaker(threshold=1))
    with pytest.raises(ModelHTTPError):
        await guarded.request(ASK)
    assert guarded.breaker.state == "closed"  # a 401 is our mistake, not an outage
    with pytest.raises(ModelConnectionError):
        await guarded.request(ASK)
    assert guarded.breaker.state == "open"
    with pytest.raises(CircuitOpen):
        await guarded.request(ASK)  # not sent


class _Down(JsonProvider):
    status = 503
    requests = 0

    def answer(self, sent: dict[str, Any]) -> tuple[int, object, dict[str, str]]:
        type(self).requests += 1
        body = {"error": {"message": "The server is overloaded"}}
        return type(self).status, body, {"Retry-After": "0"}


@pytest.fixture
def failing_openai() -> Iterator[dict[str, str]]:
    _Down.requests = 0
    with serving(_Down) as url:
        yield {"OPENAI_API_KEY": "sk-test-not-a-real-key", "OPENAI_BASE_URL": f"{url}/v1"}


def test_an_outage_moves_the_run_to_the_next_model_and_says_why(
    workspace: Path, failing_openai: dict[str, str]
) -> None:
    write_script(workspace / "moves.yaml", [{"finish": "done by the fallback"}])
    task = write_task(
        workspace / "task.md", "Do it.", models=["openai:gpt-4o-mini", "scripted:moves.yaml"]
    )
    result = gm("run", str(task), cwd=workspace, env=failing_openai)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "openai:gpt-4o-mini is failing" in result.stdout and "moving to scripted:" in result.stdout
    )
    log = [
        json.loads(line) for line in gm("log", "last", "--json", cwd=workspace).stdout.splitlines()
    ]
    (fallback,) = [e for e in log if e["kind"] == "model.fallback"]
    assert fallback["source"] == "kernel"
    assert fallback["data"]["from_model"] == "openai:gpt-4o-mini"
    assert fallback["data"]["to_model"] == f"scripted:{workspace / 'moves.yaml'}"
    assert "HTTP 503" in fallback["data"]["reason"] and "overloaded" in fallback["data"]["reason"]
    # The breaker opened after three failures: the fourth attempt was never sent.
    assert _Down.requests == 3
    status = gm("status", "last", cwd=workspace).stdout
    assert "status   succeeded" in status and "model    scripted:" in status
    assert gm("replay", "last", "--recorded", "-q", cwd=workspace).returncode == 0


def test_a_bad_key_is_not_an_outage_the_run_fails_with_the_providers_message(
    workspace: Path, failing_openai: dict[str, str]
) -> None:
    _Down.status = 401
    try:
        write_script(workspace / "moves.yaml", [{"finish": "never"}])
        task = write_task(
            workspace / "task.md", "Do it.", models=["openai:gpt-4o-mini", "scripted:moves.yaml"]
        )
        result = gm("run", str(task), cwd=workspace, env=failing_openai)
    finally:
        _Down.status = 503
    assert result.returncode == 1
    assert "HTTP 401" in result.stdout and "check the API key" in result.stdout
    assert "moving to" not in result.stdout
