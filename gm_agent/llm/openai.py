"""OpenAI Chat Completions, and every server that speaks it.

OpenAI itself, Ollama, vLLM, LM Studio and the llama.cpp server accept the
same ``POST {base_url}/chat/completions`` body (OpenAI API reference, "Create
chat completion"). This module only maps between that wire format and
:mod:`gm_agent.llm`'s messages; the loop lives in the kernel.
"""

from __future__ import annotations

import json
from email.utils import parsedate_to_datetime
from typing import Any, cast

import httpx
from pydantic import JsonValue

from gm_agent.errors import ModelConnectionError, ModelError, ModelHTTPError
from gm_agent.events import TokenUsage, ToolCallData
from gm_agent.llm._messages import Message, ModelRequest, Move, ToolSpec, clean_move

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "OpenAIChatModel",
    "decode_response",
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
    model: str, request: ModelRequest, *, null_content: bool = True
) -> dict[str, Any]:
    """The Chat Completions request body for ``request`` (non-streaming).

    ``null_content``: send ``content: null`` for assistant turns that only call
    tools, as OpenAI does; compatible servers get ``""`` instead.
    """
    body: dict[str, Any] = {
        "model": model,
        "messages": [_encode_message(m, null_content) for m in request.messages],
        "stream": False,
    }
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


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110 §10.2.3), if any.

    Accepts delay-seconds, and an HTTP-date measured against the response's own
    ``Date`` header (so no local clock is read). Unparseable values give ``None``.
    """
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        until = parsedate_to_datetime(value)
        now = parsedate_to_datetime(headers["date"])
    except (KeyError, TypeError, ValueError):
        return None
    return max((until - now).total_seconds(), 0.0)


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


def _decode(body: dict[str, Any]) -> Move:
    choice = body["choices"][0]
    message = choice["message"]
    usage: dict[str, Any] = body.get("usage") or {}
    return Move(
        text=message.get("content") or "",
        tool_calls=tuple(
            _decode_call(i, call) for i, call in enumerate(message.get("tool_calls") or [], start=1)
        ),
        usage=TokenUsage(
            input_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
        ),
        finish_reason=choice.get("finish_reason"),
        model=body.get("model"),
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
    ) -> None:
        self._null_content = null_content
        self.name = name
        self.model = model
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(headers=headers, timeout=timeout_s, transport=transport)

    async def request(self, request: ModelRequest) -> Move:
        """POST the conversation and parse the move.

        Raises:
            ModelHTTPError: the server answered an error status.
            ModelError: the server could not be reached or the reply is not JSON.
        """
        url = f"{self.base_url}/chat/completions"
        headers = {"Idempotency-Key": request.idempotency_key} if request.idempotency_key else {}
        try:
            response = await self._client.post(
                url,
                json=encode_request(self.model, request, null_content=self._null_content),
                headers=headers,
            )
        except httpx.HTTPError as exc:
            raise ModelConnectionError(
                f"cannot reach {url!r}: {exc!r}; is the server running?"
            ) from exc
        if response.status_code >= 400:
            raise ModelHTTPError(
                self.name, response.status_code, response.text, retry_after(response.headers)
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise ModelError(
                f"{url!r} answered with a body that is not JSON: {response.text[:500]!r}"
            ) from exc
        return decode_response(body)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()
