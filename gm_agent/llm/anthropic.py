"""Anthropic's Messages API, over httpx.

One ``POST {base_url}/v1/messages`` body per move (Anthropic API reference,
"Messages"), streamed as server-sent events when someone watches ("Streaming
Messages"). This module only maps between that wire format and
:mod:`gm_agent.llm`'s messages; the loop lives in the kernel.

Thinking blocks come back with a ``signature`` that must be sent back
unchanged on later turns when tools are used ("Extended thinking",
"Preserving thinking blocks"): they travel in ``Move.provider_data``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
from pydantic import JsonValue

from gm_agent.errors import ConfigError, ModelConnectionError, ModelError, ModelHTTPError
from gm_agent.events import TokenUsage, ToolCallData
from gm_agent.llm._http import post_json, stream_events
from gm_agent.llm._messages import Delta, Message, ModelRequest, Move, OnDelta, clean_move
from gm_agent.llm.openai import DEFAULT_TIMEOUT_S
from gm_agent.llm.prices import Pricing

__all__ = [
    "ANTHROPIC_VERSION",
    "DEFAULT_BASE_URL",
    "AnthropicModel",
    "decode_response",
    "decode_stream",
    "decode_usage",
    "encode_request",
]

DEFAULT_BASE_URL = "https://api.anthropic.com"
"""Where the Messages API is; ``/v1/messages`` is added to it."""
ANTHROPIC_VERSION = "2023-06-01"
"""The ``anthropic-version`` header (Anthropic API reference, "Versions")."""

_KEPT = frozenset({"thinking", "redacted_thinking"})
"""Content blocks gm never reads but must send back as they came."""

_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "conflict_error": 409,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
"""The HTTP status of each error ``type`` (Anthropic API reference, "Errors")."""


def _text(text: str) -> list[dict[str, Any]]:
    # The API rejects empty text blocks.
    return [{"type": "text", "text": text}] if text else []


def _kept_blocks(message: Message) -> list[dict[str, Any]]:
    data = (message.provider_data or {}).get("anthropic")
    content = data.get("content") if isinstance(data, dict) else None
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") in _KEPT]


def _blocks(message: Message) -> list[dict[str, Any]]:
    match message.role:
        case "system" | "user":
            return _text(message.text)
        case "assistant":
            calls = [
                {"type": "tool_use", "id": c.call_id, "name": c.name, "input": c.args}
                for c in message.tool_calls
            ]
            return [*_kept_blocks(message), *_text(message.text), *calls]
        case "tool":
            return [
                {"type": "tool_result", "tool_use_id": message.call_id, "content": message.text}
            ]


def encode_request(
    model: str,
    request: ModelRequest,
    *,
    max_tokens: int,
    stream: bool = False,
    thinking_budget: int | None = None,
) -> dict[str, Any]:
    """The Messages request body for ``request``.

    System messages become the top-level ``system`` string (joined by blank
    lines). Tool results are ``tool_result`` blocks of a user message; messages
    of the same role in a row are merged into one, since roles must alternate
    (Anthropic API reference, "Messages": ``messages``). ``max_tokens`` caps the
    reply in tokens; ``thinking_budget`` turns on extended thinking with that
    many tokens ("Extended thinking"). Never raises.
    """
    system = "\n\n".join(m.text for m in request.messages if m.role == "system" and m.text)
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "system":
            continue
        blocks = _blocks(message)
        role = "assistant" if message.role == "assistant" else "user"
        if not blocks:
            continue
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens,
        "messages": messages,
        "stream": stream,
    }
    if system:
        body["system"] = system
    if request.tools:
        body["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in request.tools
        ]
        body["tool_choice"] = {"type": "auto"}
    if thinking_budget is not None:
        body["thinking"] = {"type": "enabled", "budget_tokens": thinking_budget}
    return body


def _decode_call(block: dict[str, Any]) -> ToolCallData:
    call_id, name = str(block["id"]), str(block["name"])
    args: object = block.get("input", {})
    error: str | None = None
    if isinstance(args, str):  # a streamed input: its partial_json pieces, joined
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as exc:
            error = f"the arguments are not valid JSON ({exc.msg} at character {exc.pos}): {args[:200]!r}"
    if error is None and not isinstance(args, dict):
        error = f"the arguments must be a JSON object, got {json.dumps(args)[:200]!r}"
    if error is not None:
        return ToolCallData(call_id=call_id, name=name, args_error=error)
    return ToolCallData(call_id=call_id, name=name, args=cast(dict[str, JsonValue], args))


def decode_usage(usage: dict[str, Any]) -> TokenUsage:
    """A Messages ``usage`` object as gm counts it.

    Anthropic's ``input_tokens`` leaves out the cached ones, so gm's
    ``input_tokens`` is ``input_tokens + cache_creation_input_tokens +
    cache_read_input_tokens``; those two are also ``cache_write_tokens`` and
    ``cache_read_tokens`` (Anthropic API reference, "Messages": ``usage``;
    "Prompt caching"). Raises ``ValueError``/``TypeError`` on non-numbers.
    """
    read = int(usage.get("cache_read_input_tokens") or 0)
    write = int(usage.get("cache_creation_input_tokens") or 0)
    return TokenUsage(
        input_tokens=int(usage.get("input_tokens") or 0) + read + write,
        output_tokens=int(usage.get("output_tokens") or 0),
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


def _decode(body: dict[str, Any]) -> Move:
    text: list[str] = []
    calls: list[ToolCallData] = []
    kept: list[dict[str, Any]] = []
    content: list[dict[str, Any]] = body["content"]
    for block in content:
        if block["type"] == "text":
            text.append(str(block["text"]))
        elif block["type"] == "tool_use":
            calls.append(_decode_call(block))
        elif block["type"] in _KEPT:
            kept.append(block)
    return clean_move(
        Move(
            text="".join(text),
            tool_calls=tuple(calls),
            usage=decode_usage(body.get("usage") or {}),
            finish_reason=body.get("stop_reason"),
            model=body.get("model"),
            provider_data={"anthropic": {"content": cast(JsonValue, kept)}} if kept else None,
        )
    )


def decode_response(body: dict[str, Any]) -> Move:
    """Parse a Messages response body into a move.

    ``text`` blocks are joined into the text; ``tool_use`` blocks become tool
    calls (an ``input`` that is not an object gives ``args_error``; a string
    ``input``, as :func:`decode_stream` assembles it, is parsed as JSON first);
    ``thinking`` and ``redacted_thinking`` blocks are kept verbatim in
    ``provider_data["anthropic"]["content"]``; other block types are ignored.
    ``finish_reason`` is ``stop_reason`` (Anthropic API reference, "Messages").

    Raises:
        ModelError: the body is not a Messages reply; the message quotes its start.
    """
    try:
        return _decode(body)
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        raise ModelError(
            f"malformed Messages reply ({type(exc).__name__}: {exc}): {str(body)[:500]}"
        ) from exc


def _stream_error(provider: str, data: dict[str, Any]) -> ModelHTTPError:
    error: dict[str, Any] = data.get("error") or {}
    status = _ERROR_STATUS.get(str(error.get("type")), 500)
    return ModelHTTPError(provider, status, json.dumps(data))


async def decode_stream(
    events: AsyncIterator[tuple[str, Any]], on_delta: OnDelta, *, provider: str = "anthropic"
) -> Move:
    """Assemble a move from Messages stream events, sending each piece to ``on_delta``.

    ``message_start`` brings the model and first usage; ``content_block_start``
    opens block ``index``; ``content_block_delta`` appends ``text_delta``,
    ``thinking_delta``, ``signature_delta`` or ``input_json_delta`` pieces to
    it; ``message_delta`` brings ``stop_reason`` and cumulative usage;
    ``message_stop`` ends it; ``ping`` and unknown events are skipped
    (Anthropic API reference, "Streaming Messages"). A tool's input is its
    ``partial_json`` pieces joined (none: ``{}``; invalid: ``args_error``).
    ``provider`` names the model in errors.

    Raises:
        ModelHTTPError: an ``error`` event, with the status of its type
            (``overloaded_error`` is 529, retryable; "Errors").
        ModelConnectionError: the stream ended before ``message_stop``.
        ModelError: an event is malformed.
    """
    message: dict[str, Any] = {"usage": {}}
    blocks: dict[int, dict[str, Any]] = {}
    call_of: dict[int, int] = {}
    stopped = False
    async for name, data in events:
        if name == "json":  # the server did not stream
            move = decode_response(data)
            if move.text:
                on_delta(Delta(text=move.text))
            return move
        try:
            kind = data.get("type") or name
            if kind == "error":
                raise _stream_error(provider, data)
            if kind == "message_start":
                message = {**data["message"], "usage": dict(data["message"].get("usage") or {})}
            elif kind == "content_block_start":
                index = int(data["index"])
                block: dict[str, Any] = dict(data["content_block"])
                blocks[index] = block
                if block["type"] == "tool_use":
                    call_of[index] = len(call_of)
                    on_delta(Delta(call_index=call_of[index], call_name=block["name"]))
                elif block["type"] == "text" and block.get("text"):
                    on_delta(Delta(text=block["text"]))
            elif kind == "content_block_delta":
                index = int(data["index"])
                _apply_delta(blocks[index], data["delta"], call_of.get(index), on_delta)
            elif kind == "message_delta":
                message["stop_reason"] = data["delta"].get("stop_reason")
                fresh: dict[str, Any] = data.get("usage") or {}
                message["usage"].update({k: v for k, v in fresh.items() if v is not None})
            elif kind == "message_stop":
                stopped = True
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            raise ModelError(f"malformed Messages stream event ({exc}): {str(data)[:500]}") from exc
    if not stopped:
        raise ModelConnectionError(
            f"the stream from {provider} was cut off before message_stop; it will be retried"
        )
    return decode_response({**message, "content": [blocks[i] for i in sorted(blocks)]})


def _apply_delta(
    block: dict[str, Any], delta: dict[str, Any], call_index: int | None, on_delta: OnDelta
) -> None:
    match delta["type"]:
        case "text_delta":
            block["text"] = block.get("text", "") + delta["text"]
            if delta["text"]:
                on_delta(Delta(text=delta["text"]))
        case "thinking_delta":
            block["thinking"] = block.get("thinking", "") + delta["thinking"]
            if delta["thinking"]:
                on_delta(Delta(thinking=delta["thinking"]))
        case "signature_delta":
            block["signature"] = block.get("signature", "") + delta["signature"]
        case "input_json_delta":
            # Kept as JSON text until the block is complete; _decode_call parses it.
            joined = block["input"] if isinstance(block.get("input"), str) else ""
            block["input"] = joined + delta["partial_json"]
            on_delta(Delta(call_index=call_index, args_fragment=delta["partial_json"]))
        case _:  # citations and later additions: nothing gm reads
            pass


class AnthropicModel:
    """A Claude model behind the Anthropic Messages API.

    Args:
        name: the ``provider:model`` string it was made from (for the journal).
        model: the model id sent in the body (``claude-sonnet-4-5``).
        base_url: ``https://api.anthropic.com``, with or without a trailing ``/v1``
            (``ANTHROPIC_BASE_URL`` is usually set without it).
        api_key: sent as ``x-api-key`` (Anthropic API reference, "Overview").
        transport: an httpx transport, for tests (``httpx.MockTransport``).
        timeout_s: seconds to wait for a reply.
        max_tokens: most tokens of a reply (``max_tokens`` is required by the API).
        thinking_budget: tokens of extended thinking, or ``None`` for none.

    Raises:
        ConfigError: ``thinking_budget`` is under 1,024 or not under
            ``max_tokens`` (Anthropic docs, "Extended thinking").
    """

    def __init__(
        self,
        name: str,
        model: str,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_tokens: int = 4096,
        thinking_budget: int | None = None,
    ) -> None:
        if thinking_budget is not None and not 1024 <= thinking_budget < max_tokens:
            raise ConfigError(
                f"thinking budget {thinking_budget!r} must be at least 1024 tokens and less "
                f"than max_tokens ({max_tokens!r}); change one of them"
            )
        self.pricing: Pricing = "anthropic"
        self.context_window: int | None = None
        self.name = name
        self.model = model
        self.max_tokens = max_tokens
        self.thinking_budget = thinking_budget
        base = base_url.rstrip("/")
        self.url = f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"
        headers = {"anthropic-version": ANTHROPIC_VERSION, "content-type": "application/json"}
        if api_key:
            headers["x-api-key"] = api_key
        self._client = httpx.AsyncClient(headers=headers, timeout=timeout_s, transport=transport)

    async def request(self, request: ModelRequest, on_delta: OnDelta | None = None) -> Move:
        """POST the conversation and parse the move; streamed when ``on_delta`` is given.

        Raises:
            ModelHTTPError: the API answered an error status, or streamed an
                ``error`` event.
            ModelConnectionError: the API could not be reached, or the stream
                was cut off.
            ModelError: the reply is not a Messages body or stream.
        """
        headers = {"Idempotency-Key": request.idempotency_key} if request.idempotency_key else {}
        body = encode_request(
            self.model,
            request,
            max_tokens=self.max_tokens,
            stream=on_delta is not None,
            thinking_budget=self.thinking_budget,
        )
        if on_delta is None:
            return decode_response(
                await post_json(self._client, self.name, self.url, body, headers)
            )
        events = stream_events(self._client, self.name, self.url, body, headers)
        return await decode_stream(events, on_delta, provider=self.name)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()
