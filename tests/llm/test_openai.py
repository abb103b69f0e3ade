"""The OpenAI-compatible provider against recorded OpenAI traffic (shared/fixtures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from gm_agent.errors import ModelConnectionError, ModelError, ModelHTTPError
from gm_agent.events import ToolCallData
from gm_agent.llm import Delta, Message, ModelRequest, OpenAIChatModel, ToolSpec
from tests.helpers import WEATHER, bodies, interactions, replay

pytestmark = pytest.mark.anyio


def without_unused_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The recorded body minus what gm does not send (`strict` tool schemas)."""
    body = json.loads(json.dumps(body))
    for tool in body.get("tools", []):
        tool["function"].pop("strict", None)
    return body


async def test_a_tool_call_round_trip_matches_the_recorded_openai_traffic() -> None:
    recorded = interactions("test_tool_choice_matrixauto-openai.yaml")
    seen: list[httpx.Request] = []
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

    assert bodies(seen) == [without_unused_fields(i["request"]["parsed_body"]) for i in recorded]


async def test_the_idempotency_key_is_sent_as_a_header() -> None:
    headers: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        headers.append(request.headers.get("idempotency-key"))
        return httpx.Response(200, json={"choices": [{"message": {"content": "ok"}}]})

    model = OpenAIChatModel("x", "m", "http://test/v1", transport=httpx.MockTransport(handler))
    user = Message(role="user", text="hi")
    await model.request(ModelRequest(messages=(user,), idempotency_key="R/1/0/abc"))
    await model.request(ModelRequest(messages=(user,)))
    assert headers == ["R/1/0/abc", None]


async def test_compatible_servers_get_an_empty_string_instead_of_null_content() -> None:
    seen: list[httpx.Request] = []
    recorded = interactions("test_tool_choice_matrixauto-openai.yaml")
    model = OpenAIChatModel("x", "m", "http://127.0.0.1:1/v1", transport=replay(recorded, seen))
    call = ToolCallData(call_id="c", name="get_weather", args={"city": "Paris"})
    await model.request(
        ModelRequest(messages=(Message(role="assistant", tool_calls=(call,)),), tools=(WEATHER,))
    )
    assert bodies(seen)[0]["messages"][0]["content"] == ""


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


@pytest.mark.parametrize(
    "body",
    [
        {"choices": [{"message": "a string"}]},
        {"choices": [{"message": {"content": [{"type": "text", "text": "parts"}]}}]},
        {"choices": [{"message": {"tool_calls": ["not an object"]}}]},
        {"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": "n/a"}},
        {"choices": []},
        {"error": "no choices at all"},
    ],
    ids=["message-str", "content-parts", "call-str", "usage-str", "no-choice", "no-choices"],
)
async def test_a_malformed_reply_is_a_model_error(body: dict[str, Any]) -> None:
    model = OpenAIChatModel(
        "x",
        "m",
        "http://test/v1",
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=body)),
    )
    with pytest.raises(ModelError, match="malformed Chat Completions reply"):
        await model.request(ModelRequest(messages=(Message(role="user", text="hi"),)))


async def test_lone_surrogates_are_cleaned_where_the_reply_comes_in() -> None:
    raw = '{"choices": [{"message": {"content": "hi \\ud83d", "tool_calls": [{"id": "c", "function": {"name": "w", "arguments": "{\\"p\\": \\"\\\\ud83d\\"}"}}]}}]}'
    model = OpenAIChatModel(
        "x",
        "m",
        "http://test/v1",
        transport=httpx.MockTransport(lambda r: httpx.Response(200, content=raw.encode())),
    )
    move = await model.request(ModelRequest(messages=(Message(role="user", text="hi"),)))
    assert move.text == "hi ?" and move.tool_calls[0].args == {"p": "?"}
    move.model_dump_json().encode("utf-8")  # storable


async def test_the_api_key_goes_only_to_the_base_url_the_user_set(tmp_path: Path) -> None:
    from gm_agent.llm import make_model
    from gm_agent.settings import load_settings

    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json={"choices": [{"message": {"content": "ok"}}]})

    environ = {"OPENAI_API_KEY": "sk-user-real-key"}
    (tmp_path / "gm.toml").write_text('[providers.openai]\nbase_url = "http://attacker.test/v1"\n')
    from_task = make_model(
        "http://attacker.test/v1#m", load_settings(tmp_path, environ), environ, tmp_path
    )
    from_toml = make_model("openai:m", load_settings(tmp_path, environ), environ, tmp_path)
    trusted_env = {**environ, "OPENAI_BASE_URL": "http://127.0.0.1:8080/v1"}
    trusted = make_model("openai:m", load_settings(tmp_path, trusted_env), trusted_env, tmp_path)
    for model in (from_task, from_toml, trusted):
        assert isinstance(model, OpenAIChatModel)
        model._client._transport = httpx.MockTransport(handler)  # pyright: ignore[reportPrivateUsage]
        await model.request(ModelRequest(messages=(Message(role="user", text="hi"),)))
        await model.aclose()
    assert seen == [None, None, "Bearer sk-user-real-key"]


CAPITAL = ToolSpec(
    name="get_capital",
    description="",
    parameters={
        "additionalProperties": False,
        "properties": {"country": {"type": "string"}},
        "required": ["country"],
        "type": "object",
    },
)


async def test_a_streamed_tool_call_is_reassembled_from_the_recorded_fragments() -> None:
    recorded = interactions("test_run_stream_sync_streams_real_model.yaml")
    seen: list[httpx.Request] = []
    deltas: list[Delta] = []
    model = OpenAIChatModel(
        "openai:gpt-4o-mini",
        "gpt-4o-mini",
        "https://api.openai.com/v1",
        "sk-test",
        transport=replay(recorded, seen),
        null_content=True,
        stream=True,
    )
    ask = Message(role="user", text="What is the capital of the UK? Use the tool, then answer.")
    first = await model.request(ModelRequest(messages=(ask,), tools=(CAPITAL,)), deltas.append)
    assert bodies(seen)[0] == without_unused_fields(recorded[0]["request"]["parsed_body"])
    assert first.tool_calls == (
        ToolCallData(
            call_id="call_ZR5UUuTt3pf61kjwAJIYdVMj", name="get_capital", args={"country": "UK"}
        ),
    )
    assert "".join(d.args_fragment for d in deltas) == '{"country":"UK"}'
    assert (first.usage.input_tokens, first.usage.output_tokens) == (53, 15)
    assert first.finish_reason == "tool_calls" and first.model == "gpt-4o-mini-2024-07-18"
    deltas.clear()
    conversation = (
        ask,
        Message(role="assistant", tool_calls=first.tool_calls),
        Message(
            role="tool", text="London", call_id=first.tool_calls[0].call_id, name="get_capital"
        ),
    )
    second = await model.request(
        ModelRequest(messages=conversation, tools=(CAPITAL,)), deltas.append
    )
    assert bodies(seen)[1] == without_unused_fields(recorded[1]["request"]["parsed_body"])
    assert second.text == "".join(d.text for d in deltas) and "London" in second.text
    await model.aclose()


async def test_a_stream_cut_before_its_end_is_a_retryable_connection_error() -> None:
    recorded = interactions("test_run_stream_sync_streams_real_model.yaml")
    body = recorded[0]["response"]["body"]["string"]
    cut = body[: body.index('"finish_reason":"tool_calls"')].rsplit("\n\n", 1)[0] + "\n\n"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=cut)

    transport = httpx.MockTransport(handler)
    model = OpenAIChatModel(
        "openai:x", "x", "http://127.0.0.1:1/v1", transport=transport, stream=True
    )
    pieces: list[Delta] = []
    with pytest.raises(ModelConnectionError, match="ended before the reply was complete"):
        await model.request(
            ModelRequest(messages=(Message(role="user", text="hi"),)), pieces.append
        )
    assert pieces  # what did arrive was shown
    await model.aclose()
