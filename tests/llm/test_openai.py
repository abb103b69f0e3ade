"""The OpenAI-compatible provider against recorded OpenAI traffic (shared/fixtures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gm_agent.errors import ModelError, ModelHTTPError
from gm_agent.events import ToolCallData
from gm_agent.llm import Message, ModelRequest, OpenAIChatModel, ToolSpec

pytestmark = pytest.mark.anyio

CASSETTES = (
    Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "llm" / "pydantic-ai-cassettes"
)


def interactions(name: str) -> list[dict[str, Any]]:
    return yaml.safe_load((CASSETTES / name).read_text())["interactions"]


def without_unused_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The recorded body minus what gm does not send (`strict` tool schemas)."""
    body = json.loads(json.dumps(body))
    for tool in body.get("tools", []):
        tool["function"].pop("strict", None)
    return body


def replay(recorded: list[dict[str, Any]], seen: list[dict[str, Any]]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        interaction = recorded[len(seen)]
        seen.append(json.loads(request.content))
        response = interaction["response"]
        return httpx.Response(response["status"]["code"], json=response["parsed_body"])

    return httpx.MockTransport(handler)


WEATHER = ToolSpec(
    name="get_weather",
    description="Get the current weather for a city.",
    parameters={
        "additionalProperties": False,
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "type": "object",
    },
)


async def test_a_tool_call_round_trip_matches_the_recorded_openai_traffic() -> None:
    recorded = interactions("test_tool_choice_matrixauto-openai.yaml")
    seen: list[dict[str, Any]] = []
    model = OpenAIChatModel(
        "openai:gpt-5-mini",
        "gpt-5-mini",
        "https://api.openai.com/v1",
        "sk-test",
        transport=replay(recorded, seen),
        null_content=True,
    )
    user = Message(role="user", text="What's the weather in Paris?")
    first = await model.request(ModelRequest(messages=(user,), tools=(WEATHER,)))
    assert first.tool_calls == (
        ToolCallData(
            call_id="call_aDdJTteHrpMdhdkEkyxjxEHH", name="get_weather", args={"city": "Paris"}
        ),
    )
    assert (first.usage.input_tokens, first.usage.output_tokens) == (132, 23)
    assert (first.finish_reason, first.model) == ("tool_calls", "gpt-5-mini-2025-08-07")

    history = (
        user,
        Message(role="assistant", tool_calls=first.tool_calls),
        Message(
            role="tool",
            call_id="call_aDdJTteHrpMdhdkEkyxjxEHH",
            name="get_weather",
            text="Sunny, 22C in Paris",
        ),
    )
    second = await model.request(ModelRequest(messages=history, tools=(WEATHER,)))
    assert second.text.startswith("It's sunny in Paris right now")
    assert second.tool_calls == ()
    await model.aclose()

    assert seen == [without_unused_fields(i["request"]["parsed_body"]) for i in recorded]


async def test_compatible_servers_get_an_empty_string_instead_of_null_content() -> None:
    seen: list[dict[str, Any]] = []
    recorded = interactions("test_tool_choice_matrixauto-openai.yaml")
    model = OpenAIChatModel("x", "m", "http://127.0.0.1:1/v1", transport=replay(recorded, seen))
    call = ToolCallData(call_id="c", name="get_weather", args={"city": "Paris"})
    await model.request(
        ModelRequest(messages=(Message(role="assistant", tool_calls=(call,)),), tools=(WEATHER,))
    )
    assert seen[0]["messages"][0]["content"] == ""


@pytest.mark.parametrize(
    ("arguments", "error"),
    [('{"city": "Par', "not valid JSON"), ('["Paris"]', "must be a JSON object")],
)
async def test_malformed_tool_arguments_become_an_error_for_the_model(
    arguments: str, error: str
) -> None:
    body = {
        "choices": [
            {
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": arguments},
                        }
                    ],
                },
            }
        ]
    }
    model = OpenAIChatModel(
        "x",
        "m",
        "http://test/v1",
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=body)),
    )
    move = await model.request(ModelRequest(messages=(Message(role="user", text="hi"),)))
    (call,) = move.tool_calls
    assert (
        call.name == "get_weather"
        and call.args == {}
        and call.args_error is not None
        and error in call.args_error
    )


async def test_http_errors_carry_the_status_and_the_providers_message() -> None:
    body = {"error": {"message": "Incorrect API key provided"}}
    model = OpenAIChatModel(
        "openai:m",
        "m",
        "http://test/v1",
        transport=httpx.MockTransport(lambda r: httpx.Response(401, json=body)),
    )
    with pytest.raises(
        ModelHTTPError, match=r"HTTP 401.*Incorrect API key.*check the API key"
    ) as info:
        await model.request(ModelRequest(messages=(Message(role="user", text="hi"),)))
    assert info.value.status == 401


async def test_an_unreachable_server_and_a_non_json_reply_are_model_errors() -> None:
    model = OpenAIChatModel("x", "m", "http://127.0.0.1:9/v1")
    with pytest.raises(ModelError, match="cannot reach"):
        await model.request(ModelRequest(messages=(Message(role="user", text="hi"),)))
    await model.aclose()
    garbage = OpenAIChatModel(
        "x",
        "m",
        "http://test/v1",
        transport=httpx.MockTransport(lambda r: httpx.Response(200, text="<html>")),
    )
    with pytest.raises(ModelError, match="not JSON"):
        await garbage.request(ModelRequest(messages=(Message(role="user", text="hi"),)))
