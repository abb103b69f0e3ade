"""Cost in US dollars: priced per response from genai-prices' table, summed per
run, shown by `gm status` and `gm runs`, and bounded by `max_cost_usd`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gm_agent.events import TokenUsage
from gm_agent.llm.openai import decode_usage
from gm_agent.llm.prices import price_of
from tests.conftest import gm
from tests.helpers import CASSETTES, JsonProvider, serving, write_task

GPT_4O_MINI = (0.15, 0.075, 0.60)
"""US dollars per million input, cached input and output tokens of gpt-4o-mini
(https://openai.com/api/pricing/)."""


def test_a_response_is_priced_by_its_providers_table_with_cached_input_at_its_own_rate() -> None:
    usage = TokenUsage(input_tokens=1_000_000, cache_read_tokens=400_000, output_tokens=100_000)
    price = price_of("openai", ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"), usage)
    fresh, cached, out = GPT_4O_MINI
    assert price.cost_usd == pytest.approx(0.6 * fresh + 0.4 * cached + 0.1 * out)
    assert price.source.startswith("https://")


def test_free_unknown_and_unlisted_models() -> None:
    usage = TokenUsage(input_tokens=1000, output_tokens=10)
    assert price_of("free", ("smollm2",), usage).cost_usd == 0.0
    assert price_of("unknown", ("qwen3",), usage).cost_usd is None
    unlisted = price_of("openai", (None, "my-finetune"), usage)
    assert unlisted.cost_usd is None and "'my-finetune' is not in" in unlisted.source


def test_openai_usage_details_are_read_from_the_recorded_stream() -> None:
    text = (CASSETTES / "test_run_stream_sync_streams_real_model.yaml").read_text()
    last = next(line for line in text.splitlines() if '"usage":{"prompt_tokens"' in line)
    chunk = json.loads(last.strip().removeprefix("data: "))
    assert decode_usage(chunk["usage"]) == TokenUsage(input_tokens=53, output_tokens=15)
    detailed = {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "prompt_tokens_details": {"cached_tokens": 1920},
        "completion_tokens_details": {"reasoning_tokens": 192},
    }
    assert decode_usage(detailed) == TokenUsage(
        input_tokens=2006, output_tokens=300, cache_read_tokens=1920, reasoning_tokens=192
    )


def _reply(n: int) -> dict[str, Any]:
    """Request ``n``'s reply: look around twice, then finish; a million input tokens each."""
    call = (
        {"name": "list_dir", "arguments": json.dumps({"path": "."})}
        if n < 3
        else {"name": "finish", "arguments": json.dumps({"summary": "looked"})}
    )
    return {
        "id": f"chatcmpl-{n}",
        "object": "chat.completion",
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": f"call_{n}", "type": "function", "function": call}],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 1_000_000, "completion_tokens": 0, "total_tokens": 1_000_000},
    }


class _Provider(JsonProvider):
    requests = 0

    def answer(self, sent: dict[str, Any]) -> tuple[int, object, dict[str, str]]:
        type(self).requests += 1
        return 200, _reply(type(self).requests), {}


@pytest.fixture
def openai_here() -> Iterator[dict[str, str]]:
    """A Chat Completions server on 127.0.0.1, and the environment that points gm at it."""
    _Provider.requests = 0
    with serving(_Provider) as url:
        yield {"OPENAI_API_KEY": "sk-test-not-a-real-key", "OPENAI_BASE_URL": f"{url}/v1"}


def test_a_cost_budget_stops_the_run_and_a_raised_one_finishes_it(
    workspace: Path, openai_here: dict[str, str]
) -> None:
    task = write_task(
        workspace / "task.md",
        "Look around.",
        model="openai:gpt-4o-mini",
        budget={"max_cost_usd": 0.25},
    )
    stopped = gm("run", str(task), cwd=workspace, env=openai_here)
    assert stopped.returncode == 3, stopped.stdout + stopped.stderr
    assert "max_cost_usd=0.25 reached ($0.3000 used)" in stopped.stdout + stopped.stderr
    assert _Provider.requests == 2  # checked before each request: the third is never sent
    status = gm("status", "last", cwd=workspace).stdout
    assert "cost     $0.3000" in status and "status   waiting" in status
    resumed = gm("resume", "last", "--budget", "max_cost_usd=1", cwd=workspace, env=openai_here)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    runs = gm("runs", cwd=workspace).stdout
    assert "$0.4500" in runs and "COST" in runs
    log = [
        json.loads(line) for line in gm("log", "last", "--json", cwd=workspace).stdout.splitlines()
    ]
    costs = [e["data"]["cost_usd"] for e in log if e["kind"] == "model.response"]
    assert costs == pytest.approx([0.15, 0.15, 0.15])


def test_a_model_without_a_price_says_so(workspace: Path, openai_here: dict[str, str]) -> None:
    url = openai_here["OPENAI_BASE_URL"]
    task = write_task(workspace / "task.md", "Look around.", model=f"{url}#qwen3")
    assert gm("run", str(task), cwd=workspace, env=openai_here).returncode == 0
    status = gm("status", "last", cwd=workspace).stdout
    assert "cost     ? (3 responses had no price)" in status
