"""The Anthropic provider against recorded Anthropic traffic (shared/fixtures)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from gm_agent.errors import ConfigError, ModelConnectionError, ModelError, ModelHTTPError
from gm_agent.events import TokenUsage, ToolCallData
from gm_agent.llm import Delta, Message, ModelRequest
from gm_agent.llm.anthropic import AnthropicModel, decode_response, encode_request
from tests.helpers import WEATHER, bodies, interactions, replay

pytestmark = pytest.mark.anyio


def without_unused_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The recorded body minus what gm does not send: `is_error` on tool results.

    A gm tool message carries no success flag (the model reads failures in the
    text), and `is_error` defaults to false, so pydantic-ai's `is_error: false`
    says nothing gm leaves out. Nothing else is dropped.
    """
    body = json.loads(json.dumps(body))
    for message in body["messages"]:
        for block in message["content"]:
            if block["type"] == "tool_result":
                block.pop("is_error", None)
    return body


def answering(status: int, body: dict[str, Any]) -> httpx.MockTransport:
    return httpx.MockTransport(lambda r: httpx.Response(status, json=body))


def streaming(events: list[dict[str, Any]]) -> httpx.MockTransport:
    text = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
    return httpx.MockTransport(
        lambda r: httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=text.encode()
        )
    )


def claude(transport: httpx.AsyncBaseTransport, **options: Any) -> AnthropicModel:
    return AnthropicModel(
        "anthropic:claude-sonnet-4-5",
        "claude-sonnet-4-5",
        "https://api.anthropic.com",
        "sk-ant-test",
        transport=transport,
        **options,
    )


HI = ModelRequest(messages=(Message(role="user", text="hi"),))
START = {
    "type": "message_start",
    "message": {"model": "claude-x", "usage": {"input_tokens": 5, "output_tokens": 1}},
}
STOP = {"type": "message_stop"}


async def test_a_tool_call_round_trip_matches_the_recorded_anthropic_traffic() -> None:
    recorded = interactions("test_tool_choice_matrixauto-anthropic.yaml")
    seen: list[httpx.Request] = []
    model = claude(replay(recorded, seen))
    user = Message(role="user", text="What's the weather in Paris?")
    first = await model.request(ModelRequest(messages=(user,), tools=(WEATHER,)))
    call = ToolCallData(
        call_id="toolu_01WN4AuToBnJyXNQXwQBBebj", name="get_weather", args={"city": "Paris"}
    )
    assert first.tool_calls == (call,) and first.text == ""
    assert first.usage == TokenUsage(input_tokens=572, output_tokens=53)
    assert (first.finish_reason, first.model) == ("tool_use", "claude-sonnet-4-5-20250929")
    assert first.provider_data is None

    history = (
        user,
        Message(role="assistant", tool_calls=first.tool_calls),
        Message(role="tool", call_id=call.call_id, name=call.name, text="Sunny, 22C in Paris"),
    )
    second = await model.request(ModelRequest(messages=history, tools=(WEATHER,)))
    assert second.text.startswith("The weather in Paris is currently sunny with a temperature")
    assert (second.tool_calls, second.finish_reason) == ((), "end_turn")
    assert second.usage == TokenUsage(input_tokens=646, output_tokens=31)
    await model.aclose()

    assert bodies(seen) == [without_unused_fields(i["request"]["parsed_body"]) for i in recorded]
    # The recording's `?beta=true` is not sent.
    assert all(r.url.path == "/v1/messages" and not r.url.query for r in seen)


async def test_a_streamed_thinking_reply_matches_the_recorded_stream() -> None:
    recorded = interactions("test_anthropic_model_thinking_part_stream.yaml")
    seen: list[httpx.Request] = []
    deltas: list[Delta] = []
    model = AnthropicModel(
        "anthropic:claude-sonnet-4-0",
        "claude-sonnet-4-0",
        "https://api.anthropic.com/v1/",
        "sk-ant-test",
        transport=replay(recorded, seen),
        thinking_budget=1024,
    )
    user = Message(role="user", text="How do I cross the street?")
    move = await model.request(ModelRequest(messages=(user,)), on_delta=deltas.append)
    await model.aclose()

    assert bodies(seen) == [recorded[0]["request"]["parsed_body"]]
    assert move.text.startswith("Here are the basic steps for safely crossing the street:")
    assert move.text.endswith("Always prioritize safety over speed when crossing streets.")
    assert "".join(d.text for d in deltas) == move.text
    thinking = "".join(d.thinking for d in deltas)
    assert thinking.startswith("This is a straightforward question about pedestrian safety.")
    signature = next(
        json.loads(line[len("data: ") :])["delta"]["signature"]
        for line in recorded[0]["response"]["body"]["string"].splitlines()
        if "signature_delta" in line
    )
    block = {"type": "thinking", "thinking": thinking, "signature": signature}
    assert move.provider_data == {"anthropic": {"content": [block]}}
    assert move.usage == TokenUsage(input_tokens=43, output_tokens=282)
    assert (move.finish_reason, move.model) == ("end_turn", "claude-sonnet-4-20250514")

    # The next turn sends the thinking block back first, signature unchanged.
    back = Message(role="assistant", text=move.text, provider_data=move.provider_data)
    again = ModelRequest(messages=(user, back, Message(role="user", text="Thanks")))
    body = encode_request("claude-sonnet-4-0", again, max_tokens=4096, thinking_budget=1024)
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [block, {"type": "text", "text": move.text}],
    }


@pytest.mark.parametrize(
    ("cassette", "text", "calls"),
    [
        ("test_tool_choice_matrixnone-anthropic.yaml", "Hello! 👋 How can I help you today?", ()),
        (
            "test_tool_choice_matrixrequired-anthropic.yaml",
            "",
            (
                ToolCallData(
                    call_id="toolu_01Dxp8hdnkA8bsrVJJ8LB9q1",
                    name="get_weather",
                    args={"city": "Paris"},
                ),
            ),
        ),
    ],
)
async def test_the_other_tool_choice_replies_decode(
    cassette: str, text: str, calls: tuple[ToolCallData, ...]
) -> None:
    (recorded,) = interactions(cassette)
    move = decode_response(recorded["response"]["parsed_body"])
    assert (move.text, move.tool_calls) == (text, calls)


def test_cached_tokens_count_as_input_and_as_their_own_parts() -> None:
    body = {
        "content": [{"type": "text", "text": "ok"}],
        "usage": {
            "input_tokens": 10,
            "cache_creation_input_tokens": 200,
            "cache_read_input_tokens": 3000,
            "output_tokens": 7,
        },
    }
    assert decode_response(body).usage == TokenUsage(
        input_tokens=3210, output_tokens=7, cache_read_tokens=3000, cache_write_tokens=200
    )


def test_system_text_goes_on_top_and_consecutive_tool_results_share_one_user_message() -> None:
    calls = tuple(
        ToolCallData(call_id=f"t{i}", name="read", args={"path": f"{i}.txt"}) for i in (1, 2)
    )
    request = ModelRequest(
        messages=(
            Message(role="system", text="Be brief."),
            Message(role="system", text="Use tools."),
            Message(role="user", text="Read both"),
            Message(role="assistant", tool_calls=calls),
            Message(role="tool", call_id="t1", name="read", text="one"),
            Message(role="tool", call_id="t2", name="read", text="two"),
            Message(role="user", text="Now sum them"),
        )
    )
    body = encode_request("m", request, max_tokens=100)
    assert body["system"] == "Be brief.\n\nUse tools."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == [  # no empty text block
        {"type": "tool_use", "id": "t1", "name": "read", "input": {"path": "1.txt"}},
        {"type": "tool_use", "id": "t2", "name": "read", "input": {"path": "2.txt"}},
    ]
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "t1", "content": "one"},
        {"type": "tool_result", "tool_use_id": "t2", "content": "two"},
        {"type": "text", "text": "Now sum them"},
    ]
    assert "tools" not in body and "tool_choice" not in body and "thinking" not in body


async def test_streamed_tool_input_is_assembled_and_invalid_json_is_told_to_the_model() -> None:
    def tool(index: int, call_id: str, *fragments: str) -> list[dict[str, Any]]:
        block = {"type": "tool_use", "id": call_id, "name": "get_weather", "input": {}}
        return [
            {"type": "content_block_start", "index": index, "content_block": block},
            *(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": f},
                }
                for f in fragments
            ),
            {"type": "content_block_stop", "index": index},
        ]

    events = [
        START,
        *tool(0, "good", '{"city": ', '"Paris"}'),
        *tool(1, "bad", '{"city": "Par'),
        *tool(2, "empty"),
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 9},
        },
        STOP,
    ]
    deltas: list[Delta] = []
    move = await claude(streaming(events)).request(HI, on_delta=deltas.append)
    good, bad, empty = move.tool_calls
    assert good == ToolCallData(call_id="good", name="get_weather", args={"city": "Paris"})
    assert bad.args == {} and bad.args_error is not None and "not valid JSON" in bad.args_error
    assert empty == ToolCallData(call_id="empty", name="get_weather", args={})
    assert [(d.call_index, d.call_name, d.args_fragment) for d in deltas[:3]] == [
        (0, "get_weather", ""),
        (0, None, '{"city": '),
        (0, None, '"Paris"}'),
    ]
    assert move.usage == TokenUsage(input_tokens=5, output_tokens=9)


async def test_a_stream_cut_before_message_stop_is_a_retryable_connection_error() -> None:
    block = {"type": "text", "text": ""}
    events = [START, {"type": "content_block_start", "index": 0, "content_block": block}]
    with pytest.raises(ModelConnectionError, match="cut off") as info:
        await claude(streaming(events)).request(HI, on_delta=lambda d: None)
    assert info.value.retryable


async def test_an_overloaded_error_event_mid_stream_is_a_retryable_529() -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    with pytest.raises(ModelHTTPError, match=r"HTTP 529.*Overloaded") as info:
        await claude(streaming([START, error])).request(HI, on_delta=lambda d: None)
    assert (info.value.status, info.value.retryable) == (529, True)


async def test_an_overloaded_status_is_retryable_and_a_bad_key_is_not() -> None:
    def error(kind: str, message: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": kind, "message": message}}

    overloaded = claude(answering(529, error("overloaded_error", "Overloaded")))
    with pytest.raises(ModelHTTPError, match=r"HTTP 529.*Overloaded") as info:
        await overloaded.request(HI)
    assert info.value.retryable
    bad_key = claude(answering(401, error("authentication_error", "invalid x-api-key")))
    with pytest.raises(
        ModelHTTPError, match=r"HTTP 401.*invalid x-api-key.*check the API key"
    ) as info:
        await bad_key.request(HI)
    assert (info.value.status, info.value.retryable) == (401, False)


async def test_headers_and_the_v1_path_whatever_the_base_url() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"content": [{"type": "text", "text": "ok"}]})

    for base_url in ("https://proxy.test", "https://proxy.test/v1", "https://proxy.test/v1/"):
        model = AnthropicModel(
            "a:m", "m", base_url, "sk-ant-k", transport=httpx.MockTransport(handler)
        )
        keyed = ModelRequest(messages=HI.messages, idempotency_key="R/1/0/abc")
        assert (await model.request(keyed)).text == "ok"
        await model.aclose()
    assert [str(r.url) for r in seen] == ["https://proxy.test/v1/messages"] * 3
    headers = seen[0].headers
    assert (headers["x-api-key"], headers["anthropic-version"]) == ("sk-ant-k", "2023-06-01")
    assert (headers["content-type"], headers["idempotency-key"]) == (
        "application/json",
        "R/1/0/abc",
    )


@pytest.mark.parametrize(
    "body",
    [{"content": "a string"}, {"content": [{"type": "tool_use"}]}, {"error": "no content"}],
    ids=["content-str", "call-without-id", "no-content"],
)
def test_a_malformed_reply_is_a_model_error(body: dict[str, Any]) -> None:
    with pytest.raises(ModelError, match="malformed Messages reply"):
        decode_response(body)


async def test_redacted_thinking_is_kept_and_sent_back_before_the_tool_call() -> None:
    thinking = {"type": "thinking", "thinking": "Look it up.", "signature": "sig=="}
    redacted = {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"}
    use = {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Oslo"}}
    move = decode_response({"content": [thinking, redacted, use], "stop_reason": "tool_use"})
    assert move.provider_data == {"anthropic": {"content": [thinking, redacted]}}
    back = Message(role="assistant", tool_calls=move.tool_calls, provider_data=move.provider_data)
    body = encode_request("m", ModelRequest(messages=(back,)), max_tokens=2048)
    assert body["messages"] == [{"role": "assistant", "content": [thinking, redacted, use]}]


def test_a_thinking_budget_the_api_would_refuse_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="at least 1024 tokens"):
        AnthropicModel("a:m", "m", thinking_budget=512)
    with pytest.raises(ConfigError, match="less than max_tokens"):
        AnthropicModel("a:m", "m", max_tokens=2000, thinking_budget=2000)


def test_text_blocks_are_joined_as_written() -> None:
    # Citations split a reply's text into several blocks (Anthropic docs, "Citations").
    parts = ["According to the file, ", "the sky is blue", "."]
    move = decode_response({"content": [{"type": "text", "text": p} for p in parts]})
    assert move.text == "According to the file, the sky is blue."
