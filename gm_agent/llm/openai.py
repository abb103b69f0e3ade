"""OpenAI Chat Completions, and every server that speaks it.

OpenAI itself, Ollama, vLLM, LM Studio and the llama.cpp server accept the
same ``POST {base_url}/chat/completions`` body (OpenAI API reference, "Create
chat completion"). This module only maps between that wire format and
:mod:`gm_agent.llm`'s messages; the loop lives in the kernel.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
from pydantic import JsonValue

from gm_agent.errors import ModelConnectionError, ModelError
from gm_agent.events import TokenUsage, ToolCallData
from gm_agent.llm._http import post_json, retry_after, stream_events
from gm_agent.llm._messages import (
    Delta,
    Message,
    ModelRequest,
    Move,
    OnDelta,
    ToolSpec,
    clean_move,
)
from gm_agent.llm.prices import Pricing

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "OpenAIChatModel",
    "decode_response",
    "decode_stream",
    "encode_request",
    "retry_after",
]

DEFAULT_TIMEOUT_S = 300.0
"""Seconds to wait for a reply; generous because local CPU servers are slow."""


def _encode_message(message: Message, null_content: bool) -> dict[str, Any]:
    match message.role:
        case "system" | "user":
            return {"role": message.role, "content": message.text}
        case "assistant":
            # An assistant turn with only tool calls has `content: null` for OpenAI;
            # the llama.cpp server rejects null and its templates need a string.
            empty = None if null_content else ""
            wire: dict[str, Any] = {"role": "assistant", "content": message.text or empty}
            if message.tool_calls:
                wire["tool_calls"] = [
                    {
                        "id": call.call_id,
                        "type": "function",
                        "function": {
                            "name": call.name,
                            "arguments": json.dumps(call.args, separators=(",", ":")),
                        },
                    }
                    for call in message.tool_calls
                ]
            return wire
        case "tool":
            return {"role": "tool", "tool_call_id": message.call_id, "content": message.text}


def _encode_tool(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def encode_request(
    model: str, request: ModelRequest, *, null_content: bool = True, stream: bool = False
) -> dict[str, Any]:
    """The Chat Completions request body for ``request``.

    ``null_content``: send ``content: null`` for assistant turns that only call
    tools, as OpenAI does; compatible servers get ``""`` instead. ``stream``:
    ask for server-sent chunks, the last one with the usage
    (``stream_options.include_usage``; OpenAI API reference, "Streaming").
    """
    body: dict[str, Any] = {
        "model": model,
        "messages": [_encode_message(m, null_content) for m in request.messages],
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    if request.tools:
        body["tools"] = [_encode_tool(t) for t in request.tools]
        body["tool_choice"] = "auto"
    return body


def _decode_call(index: int, wire: dict[str, Any]) -> ToolCallData:
    function: dict[str, Any] = wire.get("function") or {}
    raw = function.get("arguments") or "{}"
    raw_args = raw if isinstance(raw, str) else json.dumps(raw)
    call_id = str(wire.get("id") or f"call_{index}")
    name = str(function.get("name") or "")
    try:
        args: object = json.loads(raw_args)
    except json.JSONDecodeError as exc:
        return ToolCallData(
            call_id=call_id,
            name=name,
            args_error=f"the arguments are not valid JSON ({exc.msg} at character {exc.pos}): {raw_args[:200]!r}",
        )
    if not isinstance(args, dict):
        return ToolCallData(
            call_id=call_id,
            name=name,
            args_error=f"the arguments must be a JSON object, got {raw_args[:200]!r}",
        )
    return ToolCallData(call_id=call_id, name=name, args=cast(dict[str, JsonValue], args))


def decode_response(body: dict[str, Any]) -> Move:
    """Parse a Chat Completions response body into a move.

    Text is cleaned of what UTF-8 cannot store (lone surrogates).

    Raises:
        ModelError: the body is not a Chat Completions reply (no
            ``choices[0].message``, or fields of the wrong type); the message
            quotes the start of the body.
    """
    try:
        return clean_move(_decode(body))
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        raise ModelError(
            f"malformed Chat Completions reply ({type(exc).__name__}: {exc}): {str(body)[:500]}"
        ) from exc


def decode_usage(usage: dict[str, Any]) -> TokenUsage:
    """Chat Completions ``usage``: ``prompt_tokens`` (cached ones included, as
    ``prompt_tokens_details.cached_tokens``), ``completion_tokens`` (reasoning
    ones included, ``completion_tokens_details.reasoning_tokens``). OpenAI API
    reference, "The chat completion object"."""
    prompt: dict[str, Any] = usage.get("prompt_tokens_details") or {}
    completion: dict[str, Any] = usage.get("completion_tokens_details") or {}
    return TokenUsage(
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        cache_read_tokens=int(prompt.get("cached_tokens") or 0),
        reasoning_tokens=int(completion.get("reasoning_tokens") or 0),
    )


def _decode(body: dict[str, Any]) -> Move:
    choice = body["choices"][0]
    message = choice["message"]
    usage: dict[str, Any] = body.get("usage") or {}
    return Move(
        text=message.get("content") or "",
        tool_calls=tuple(
            _decode_call(i, call) for i, call in enumerate(message.get("tool_calls") or [], start=1)
        ),
        usage=decode_usage(usage),
        finish_reason=choice.get("finish_reason"),
        model=body.get("model"),
    )


async def decode_stream(events: AsyncIterator[tuple[str, Any]], on_delta: OnDelta) -> Move:
    """Assemble a move from Chat Completions chunks, sending each piece to ``on_delta``.

    Text arrives in ``choices[0].delta.content``; a tool call's id and name in
    its first ``delta.tool_calls[i]`` and its arguments in fragments after; the
    usage in a last chunk with no choices (OpenAI API reference, "The chat
    completion chunk object").

    Raises:
        ModelConnectionError: the stream ended before a ``finish_reason``.
        ModelError: a chunk is malformed.
    """
    text: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    usage: dict[str, Any] = {}
    finish: str | None = None
    model: str | None = None
    async for name, chunk in events:
        if name == "json":  # the server did not stream
            move = decode_response(chunk)
            if move.text:
                on_delta(Delta(text=move.text))
            return move
        try:
            model = chunk.get("model") or model
            usage = chunk.get("usage") or usage
            choices: list[dict[str, Any]] = chunk.get("choices") or []
            for choice in choices:
                delta: dict[str, Any] = choice.get("delta") or {}
                pieces: list[dict[str, Any]] = delta.get("tool_calls") or []
                if delta.get("content"):
                    text.append(delta["content"])
                    on_delta(Delta(text=delta["content"]))
                for piece in pieces:
                    index = int(piece.get("index", len(calls)))
                    call = calls.setdefault(index, {"id": None, "name": "", "arguments": []})
                    function: dict[str, Any] = piece.get("function") or {}
                    call["id"] = piece.get("id") or call["id"]
                    call["name"] += function.get("name") or ""
                    fragment = function.get("arguments") or ""
                    call["arguments"].append(fragment)
                    on_delta(
                        Delta(
                            call_index=index,
                            call_name=function.get("name"),
                            args_fragment=fragment,
                        )
                    )
                finish = choice.get("finish_reason") or finish
        except (AttributeError, TypeError, ValueError) as exc:
            raise ModelError(
                f"malformed Chat Completions chunk ({exc}): {str(chunk)[:500]}"
            ) from exc
    if finish is None:
        raise ModelConnectionError("the stream ended before the reply was complete")
    wire_calls = [
        {"id": c["id"], "function": {"name": c["name"], "arguments": "".join(c["arguments"])}}
        for _, c in sorted(calls.items())
    ]
    return clean_move(
        Move(
            text="".join(text),
            tool_calls=tuple(_decode_call(i, w) for i, w in enumerate(wire_calls, start=1)),
            usage=decode_usage(usage),
            finish_reason=finish,
            model=model,
        )
    )


class OpenAIChatModel:
    """A model behind an OpenAI-compatible Chat Completions endpoint.

    Args:
        name: the ``provider:model`` string it was made from (for the journal).
        model: the model name sent in the body (``gpt-4.1``, ``qwen3``...).
        base_url: e.g. ``https://api.openai.com/v1`` or ``http://127.0.0.1:8080/v1``.
        api_key: sent as ``Authorization: Bearer``; ``None`` for local servers.
        transport: an httpx transport, for tests (``httpx.MockTransport``).
        timeout_s: seconds to wait for a reply.
        null_content: see :func:`encode_request`; true for OpenAI itself.
        pricing: the price table of its usage (``openai`` for ``openai:`` models,
            ``free`` for Ollama, ``unknown`` for other servers).
        stream: stream replies when someone watches (``on_delta``). On for OpenAI
            itself; off for compatible servers, some of which refuse to stream
            tool calls (llama-cpp-python's server: "Automatic streaming tool
            choice is not supported").
    """

    def __init__(
        self,
        name: str,
        model: str,
        base_url: str,
        api_key: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        null_content: bool = False,
        pricing: Pricing = "unknown",
        stream: bool = False,
    ) -> None:
        self._null_content = null_content
        self._stream = stream
        self.pricing: Pricing = pricing
        self.context_window: int | None = None
        self.name = name
        self.model = model
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(headers=headers, timeout=timeout_s, transport=transport)

    async def request(self, request: ModelRequest, on_delta: OnDelta | None = None) -> Move:
        """POST the conversation and parse the move; streamed when ``on_delta`` is
        given and this model streams (``stream``).

        Raises:
            ModelHTTPError: the server answered an error status.
            ModelConnectionError: the server could not be reached, or the stream
                was cut off.
            ModelError: the reply is not a Chat Completions body or stream.
        """
        url = f"{self.base_url}/chat/completions"
        headers = {"Idempotency-Key": request.idempotency_key} if request.idempotency_key else {}
        stream = on_delta is not None and self._stream
        body = encode_request(self.model, request, null_content=self._null_content, stream=stream)
        if on_delta is None or not stream:
            return decode_response(await post_json(self._client, self.name, url, body, headers))
        events = stream_events(self._client, self.name, url, body, headers)
        return await decode_stream(events, on_delta)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()
