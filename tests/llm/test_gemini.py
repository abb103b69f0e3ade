"""The Gemini provider against recorded Gemini API traffic (shared/fixtures)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from gm_agent.errors import ModelConnectionError, ModelError, ModelHTTPError
from gm_agent.events import TokenUsage, ToolCallData
from gm_agent.llm import Delta, Message, ModelRequest
from gm_agent.llm.gemini import (
    SKIP_SIGNATURE,
    GeminiModel,
    decode_response,
    decode_usage,
    encode_request,
)
from tests.helpers import WEATHER, interactions, replay

pytestmark = pytest.mark.anyio

API = "https://generativelanguage.googleapis.com"
KEY = "AIza-test-key"


def without_unused_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The body pydantic-ai recorded, minus what gm does not send or sends differently.

    - ``generationConfig``: pydantic-ai's knobs (``responseModalities: [TEXT]``,
      ``temperature``); gm leaves the model's defaults.
    - ``systemInstruction.role``: pydantic-ai says ``user``; the API ignores it.
    - ``functionCall.id`` / ``functionResponse.id``: pydantic-ai tags calls with
      its own ids (``pyd_ai_...``) when Gemini gives none; gm sends Gemini's parts
      back as they came, so an id only when Gemini chose one.
    - ``thoughtSignature``: google-genai decodes the bytes and re-encodes them
      URL-safe; gm returns Gemini's standard base64 string untouched. Proto3 JSON
      accepts both alphabets, so the recorded one is mapped back to compare.
    """
    body = json.loads(json.dumps(body))
    body.pop("generationConfig", None)
    body.get("systemInstruction", {}).pop("role", None)
    for content in body["contents"]:
        for part in content["parts"]:
            for key in ("functionCall", "functionResponse"):
                part.get(key, {}).pop("id", None)
            if "thoughtSignature" in part:
                part["thoughtSignature"] = (
                    part["thoughtSignature"].replace("-", "+").replace("_", "/")
                )
    return body


def answering(status: int, body: Any, headers: dict[str, str] | None = None) -> GeminiModel:
    transport = httpx.MockTransport(lambda r: httpx.Response(status, json=body, headers=headers))
    return GeminiModel("gemini:m", "m", API, KEY, transport=transport)


USER = Message(role="user", text="What's the weather in Paris?")


async def test_a_tool_call_round_trip_matches_the_recorded_gemini_traffic() -> None:
    recorded = interactions("test_tool_choice_matrixauto-google.yaml")
    seen: list[httpx.Request] = []
    model = GeminiModel(
        "gemini:gemini-2.5-flash", "gemini-2.5-flash", API, KEY, transport=replay(recorded, seen)
    )
    first = await model.request(ModelRequest(messages=(USER,), tools=(WEATHER,)))
    assert first.tool_calls == (
        ToolCallData(call_id="call_1", name="get_weather", args={"city": "Paris"}),
    )
    assert first.usage == TokenUsage(input_tokens=49, output_tokens=15 + 48, reasoning_tokens=48)
    assert (first.text, first.finish_reason, first.model) == ("", "STOP", "gemini-2.5-flash")
    model_parts = recorded[0]["response"]["parsed_body"]["candidates"][0]["content"]["parts"]
    assert first.provider_data == {"gemini": {"parts": model_parts}}

    history = (
        USER,
        Message(role="assistant", tool_calls=first.tool_calls, provider_data=first.provider_data),
        Message(role="tool", call_id="call_1", name="get_weather", text="Sunny, 22C in Paris"),
    )
    second = await model.request(ModelRequest(messages=history, tools=(WEATHER,)))
    assert second.text == "The weather in Paris is sunny with a temperature of 22C."
    assert (second.tool_calls, second.usage.input_tokens) == ((), 88)
    await model.aclose()

    assert [json.loads(r.content) for r in seen] == [
        without_unused_fields(i["request"]["parsed_body"]) for i in recorded
    ]
    assert [str(r.url) for r in seen] == [i["request"]["uri"] for i in recorded]
    assert all(r.headers["x-goog-api-key"] == KEY and KEY not in str(r.url) for r in seen)


async def test_a_streamed_reply_is_the_sum_of_its_deltas() -> None:
    recorded = interactions("test_google_model_stream.yaml")
    seen: list[httpx.Request] = []
    deltas: list[Delta] = []
    model = GeminiModel(
        "gemini:gemini-2.0-flash-exp",
        "gemini-2.0-flash-exp",
        API,
        KEY,
        transport=replay(recorded, seen),
    )
    conversation = (
        Message(role="system", text="You are a helpful chatbot."),
        Message(role="user", text="What is the capital of France?"),
    )
    move = await model.request(ModelRequest(messages=conversation), on_delta=deltas.append)
    assert [d.text for d in deltas] == ["The", " capital of France", " is Paris.\n"]
    assert move.text == "".join(d.text for d in deltas) == "The capital of France is Paris.\n"
    # The last chunk's usage counts 13 prompt tokens where the earlier ones said 15.
    assert move.usage == TokenUsage(input_tokens=13, output_tokens=8)
    assert (move.finish_reason, move.model, move.provider_data) == (
        "STOP",
        "gemini-2.0-flash-exp",
        None,
    )
    assert str(seen[0].url) == recorded[0]["request"]["uri"]
    assert json.loads(seen[0].content) == without_unused_fields(
        recorded[0]["request"]["parsed_body"]
    )
    assert seen[0].headers["x-goog-api-key"] == KEY and KEY not in str(seen[0].url)


@pytest.mark.parametrize(
    ("cassette", "calls", "text", "usage"),
    [
        (
            "test_tool_choice_matrixrequired-google.yaml",
            (ToolCallData(call_id="call_1", name="get_weather", args={"city": "Paris"}),),
            "",
            TokenUsage(input_tokens=46, output_tokens=15 + 48, reasoning_tokens=48),
        ),
        (
            "test_tool_choice_matrixnone-google.yaml",
            (),
            "Okay, let me check the current weather in Paris for you.",
            TokenUsage(input_tokens=49, output_tokens=128 + 996, reasoning_tokens=996),
        ),
    ],
    ids=["required", "none"],
)
def test_the_recorded_required_and_none_replies_decode(
    cassette: str, calls: tuple[ToolCallData, ...], text: str, usage: TokenUsage
) -> None:
    body = interactions(cassette)[0]["response"]["parsed_body"]
    move = decode_response(body)
    assert move.tool_calls == calls
    assert move.text.startswith(text) and (move.text == "") == (text == "")
    assert move.usage == usage
    # Only the call carries a signature; a plain text reply needs nothing back.
    assert (move.provider_data is not None) == bool(calls)


def test_usage_counts_cached_input_and_thoughts_as_genai_prices_expects() -> None:
    metadata = {
        "promptTokenCount": 1000,
        "cachedContentTokenCount": 600,
        "candidatesTokenCount": 50,
        "thoughtsTokenCount": 200,
        "totalTokenCount": 1250,
    }
    usage = decode_usage(metadata)
    assert usage == TokenUsage(
        input_tokens=1000, output_tokens=250, cache_read_tokens=600, reasoning_tokens=200
    )
    assert usage.input_tokens + usage.output_tokens == metadata["totalTokenCount"]


def test_thoughts_stay_out_of_the_text_and_gemini_ids_are_kept() -> None:
    parts = [
        {"text": "Paris, so...", "thought": True},
        {"text": "Checking."},
        {"functionCall": {"id": "fc-7", "name": "get_weather", "args": {"city": "Paris"}}},
        {"functionCall": {"name": "get_time"}},
    ]
    move = decode_response({"candidates": [{"content": {"parts": parts}, "finishReason": "STOP"}]})
    assert move.text == "Checking."
    assert move.tool_calls == (
        ToolCallData(call_id="fc-7", name="get_weather", args={"city": "Paris"}),
        ToolCallData(call_id="call_2", name="get_time"),
    )
    assert move.provider_data == {"gemini": {"parts": parts}}
    # Sent back as they came; the result of a call Gemini named echoes its id.
    results = (
        Message(role="tool", call_id="fc-7", name="get_weather", text="Sunny"),
        Message(role="tool", call_id="call_2", name="get_time", text="noon"),
    )
    assistant = Message(
        role="assistant", tool_calls=move.tool_calls, provider_data=move.provider_data
    )
    body = encode_request(ModelRequest(messages=(USER, assistant, *results)))
    assert body["contents"][1:] == [
        {"role": "model", "parts": parts},
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "id": "fc-7",
                        "name": "get_weather",
                        "response": {"return_value": "Sunny"},
                    }
                },
                {"functionResponse": {"name": "get_time", "response": {"return_value": "noon"}}},
            ],
        },
    ]


def test_calls_gemini_did_not_make_carry_the_documented_skip_signature() -> None:
    calls = (
        ToolCallData(call_id="toolu_1", name="read", args={"path": "a"}),
        ToolCallData(call_id="toolu_2", name="read", args={"path": "b"}),
    )
    messages = (
        Message(role="system", text="Be brief."),
        Message(role="system", text="Use tools."),
        USER,
        Message(role="assistant", text="Reading.", tool_calls=calls),
        Message(role="tool", call_id="toolu_1", text="A"),
    )
    body = encode_request(ModelRequest(messages=messages))
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief.\n\nUse tools."}]}
    assert body["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {"text": "Reading."},
                {
                    "functionCall": {"name": "read", "args": {"path": "a"}},
                    "thoughtSignature": SKIP_SIGNATURE,
                },
                {"functionCall": {"name": "read", "args": {"path": "b"}}},
            ],
        },
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": "read", "response": {"return_value": "A"}}}],
        },
    ]
    assert "tools" not in body and "toolConfig" not in body


def sse(*chunks: dict[str, Any]) -> bytes:
    return "".join(f"data: {json.dumps(c)}\r\n\r\n" for c in chunks).encode()


def streaming(content: bytes) -> GeminiModel:
    response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=content)
    return GeminiModel("gemini:m", "m", API, KEY, transport=httpx.MockTransport(lambda r: response))


async def test_streamed_thoughts_and_calls_reach_on_delta_and_keep_their_signature() -> None:
    def chunk(*parts: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"candidates": [{"content": {"role": "model", "parts": list(parts)}, **extra}]}

    content = sse(
        chunk({"text": "Think", "thought": True}),
        chunk({"text": "ing.", "thought": True}),
        chunk({"text": "Let me look"}),
        chunk({"text": ".", "thoughtSignature": "c2ln"}),
        chunk(
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            finishReason="STOP",
        ),
    )
    deltas: list[Delta] = []
    move = await streaming(content).request(ModelRequest(messages=(USER,)), deltas.append)
    assert deltas == [
        Delta(thinking="Think"),
        Delta(thinking="ing."),
        Delta(text="Let me look"),
        Delta(text="."),
        Delta(call_index=0, call_name="get_weather", args_fragment='{"city": "Paris"}'),
    ]
    assert move.text == "Let me look."
    assert move.tool_calls == (
        ToolCallData(call_id="call_1", name="get_weather", args={"city": "Paris"}),
    )
    assert move.provider_data == {
        "gemini": {
            "parts": [
                {"text": "Thinking.", "thought": True},
                {"text": "Let me look.", "thoughtSignature": "c2ln"},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            ]
        }
    }


async def test_a_stream_cut_before_its_finish_reason_is_a_connection_error() -> None:
    recorded = interactions("test_google_model_stream.yaml")
    events = recorded[0]["response"]["body"]["string"].split("\r\n\r\n")
    cut = "\r\n\r\n".join(events[:2]) + "\r\n\r\n"
    with pytest.raises(ModelConnectionError, match="cut off") as info:
        await streaming(cut.encode()).request(ModelRequest(messages=(USER,)), lambda d: None)
    assert info.value.retryable


@pytest.mark.parametrize("stream", [False, True], ids=["generate", "stream"])
async def test_a_blocked_prompt_is_a_model_error_naming_the_reason(stream: bool) -> None:
    body = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {}}
    model = streaming(sse(body)) if stream else answering(200, body)
    with pytest.raises(ModelError, match="blocked the prompt \\(PROHIBITED_CONTENT\\)"):
        await model.request(ModelRequest(messages=(USER,)), (lambda d: None) if stream else None)


async def test_no_candidate_and_a_malformed_reply_are_model_errors() -> None:
    with pytest.raises(ModelError, match="no candidate"):
        await answering(200, {"usageMetadata": {}}).request(ModelRequest(messages=(USER,)))
    with pytest.raises(ModelError, match="malformed Gemini reply"):
        await answering(200, {"candidates": [{"content": {"parts": [{"text": 3}]}}]}).request(
            ModelRequest(messages=(USER,))
        )


async def test_a_rate_limit_is_retryable_after_the_wait_google_asks_for() -> None:
    error = {"error": {"code": 429, "message": "Resource has been exhausted"}}
    with pytest.raises(ModelHTTPError) as header:
        await answering(429, error, {"Retry-After": "7"}).request(ModelRequest(messages=(USER,)))
    assert (header.value.retryable, header.value.retry_after_s) == (True, 7.0)

    # What Gemini actually sends: no header, a google.rpc.RetryInfo in the body.
    details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "31s"}]
    with pytest.raises(ModelHTTPError) as body:
        await answering(429, {"error": {**error["error"], "details": details}}).request(
            ModelRequest(messages=(USER,)), lambda d: None
        )
    assert (body.value.retryable, body.value.retry_after_s) == (True, 31.0)


async def test_a_bad_request_is_not_retried_and_shows_googles_message() -> None:
    error = {
        "error": {
            "code": 400,
            "message": 'Invalid JSON payload received. Unknown name "foo": Cannot find field.',
            "status": "INVALID_ARGUMENT",
        }
    }
    with pytest.raises(ModelHTTPError, match='Unknown name \\\\"foo\\\\"') as info:
        await answering(400, error).request(ModelRequest(messages=(USER,)))
    assert (info.value.status, info.value.retryable) == (400, False)


@pytest.mark.parametrize("base", [API, f"{API}/", f"{API}/v1beta", f"{API}/v1beta/"])
async def test_the_base_url_may_end_in_v1beta_without_doubling_it(base: str) -> None:
    urls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        urls.append(str(request.url))
        return httpx.Response(200, json={"candidates": [{"content": {"parts": [{"text": "ok"}]}}]})

    model = GeminiModel("gemini:m", "m", base, KEY, transport=httpx.MockTransport(handler))
    assert (await model.request(ModelRequest(messages=(USER,)))).text == "ok"
    assert urls == [f"{API}/v1beta/models/m:generateContent"]
