"""Google Gemini, over the Gemini API's REST endpoints (no Google SDK).

``POST {base}/v1beta/models/{model}:generateContent``, or
``:streamGenerateContent?alt=sse`` when streaming (Gemini API reference,
"generateContent"). This module only maps between that wire format and
:mod:`gm_agent.llm`'s messages. Two rules shape it:

- a thinking model's parts carry ``thoughtSignature`` fields that must come
  back unchanged, at the same position, on later turns (Gemini API docs,
  "Thought signatures"); so a move keeps the model's parts verbatim in
  ``provider_data["gemini"]["parts"]`` and the next request sends them back;
- the API key travels in the ``x-goog-api-key`` header, never in the URL, so it
  never reaches a log or the journal.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
from pydantic import JsonValue

from gm_agent.errors import ModelConnectionError, ModelError, ModelHTTPError
from gm_agent.events import TokenUsage, ToolCallData
from gm_agent.llm._http import post_json, stream_events
from gm_agent.llm._messages import Delta, Message, ModelRequest, Move, OnDelta, ToolSpec, clean_move
from gm_agent.llm.openai import DEFAULT_TIMEOUT_S
from gm_agent.llm.prices import Pricing

__all__ = [
    "DEFAULT_BASE_URL",
    "GeminiModel",
    "decode_response",
    "decode_stream",
    "decode_usage",
    "encode_request",
]

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"

SKIP_SIGNATURE = "skip_thought_signature_validator"
"""The signature Google documents for function calls Gemini did not make (a
history from another model): "Thought signatures", FAQ. Gemini 3 rejects the
first call of a step without one."""

_MALFORMED = (KeyError, IndexError, TypeError, AttributeError, ValueError)
_RETRY_DELAY = re.compile(r'"retryDelay"\s*:\s*"(\d+(?:\.\d+)?)s"')


def _model_parts(message: Message) -> list[dict[str, Any]]:
    gemini = (message.provider_data or {}).get("gemini")
    if isinstance(gemini, dict) and isinstance(gemini.get("parts"), list):
        return cast(list[dict[str, Any]], gemini["parts"])  # as Gemini sent them
    parts: list[dict[str, Any]] = [{"text": message.text}] if message.text else []
    for index, call in enumerate(message.tool_calls):
        part: dict[str, Any] = {"functionCall": {"name": call.name, "args": call.args}}
        if index == 0:
            part["thoughtSignature"] = SKIP_SIGNATURE
        parts.append(part)
    return parts


def _encode_tool(tool: ToolSpec) -> dict[str, Any]:
    # `parameters` takes only an OpenAPI subset (no additionalProperties); the
    # JSON Schema field takes the schema whole. Spelled as the recorded traffic
    # spells it (the proto field name; proto3 JSON accepts it and the camelCase).
    return {
        "name": tool.name,
        "description": tool.description,
        "parameters_json_schema": tool.parameters,
    }


def encode_request(request: ModelRequest) -> dict[str, Any]:
    """The ``generateContent`` body for ``request`` (the streaming body is the same).

    System messages join into ``systemInstruction``; assistant turns become
    ``model`` contents, sent back as Gemini's own parts when the message has
    them (``provider_data["gemini"]["parts"]``, thought signatures included);
    tool results become ``functionResponse`` parts with ``{"return_value":
    text}``, consecutive ones in one ``user`` content, as Gemini answers
    parallel calls (Gemini API docs, "Function calling"). A result echoes its
    call's ``id`` only when the call was sent with one (Gemini gave it).
    """
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    wire_ids: set[str] = set()
    for message in request.messages:
        match message.role:
            case "system":
                continue
            case "user":
                contents.append({"role": "user", "parts": [{"text": message.text}]})
            case "assistant":
                parts = _model_parts(message)
                names.update((call.call_id, call.name) for call in message.tool_calls)
                calls = [p["functionCall"] for p in parts if "functionCall" in p]
                wire_ids.update(str(call["id"]) for call in calls if call.get("id"))
                if parts:
                    contents.append({"role": "model", "parts": parts})
            case "tool":
                call_id = message.call_id or ""
                result: dict[str, Any] = {
                    "name": message.name or names.get(call_id, ""),
                    "response": {"return_value": message.text},
                }
                if call_id in wire_ids:
                    result["id"] = call_id
                part = {"functionResponse": result}
                if contents and "functionResponse" in contents[-1]["parts"][-1]:
                    contents[-1]["parts"].append(part)
                else:
                    contents.append({"role": "user", "parts": [part]})
    body: dict[str, Any] = {"contents": contents}
    system = [m.text for m in request.messages if m.role == "system"]
    if system:
        body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_encode_tool(t) for t in request.tools]}]
        body["toolConfig"] = {"functionCallingConfig": {"mode": "AUTO"}}
    return body


def decode_usage(usage_metadata: dict[str, Any]) -> TokenUsage:
    """Gemini ``usageMetadata`` as gm's usage.

    ``promptTokenCount`` includes ``cachedContentTokenCount``; the output is
    ``candidatesTokenCount`` plus ``thoughtsTokenCount``, which Gemini counts
    apart and bills as output (Gemini API reference, "UsageMetadata"). Missing
    counts are 0.
    """
    thoughts = int(usage_metadata.get("thoughtsTokenCount") or 0)
    return TokenUsage(
        input_tokens=int(usage_metadata.get("promptTokenCount") or 0),
        output_tokens=int(usage_metadata.get("candidatesTokenCount") or 0) + thoughts,
        cache_read_tokens=int(usage_metadata.get("cachedContentTokenCount") or 0),
        reasoning_tokens=thoughts,
    )


def _decode_call(index: int, call: dict[str, Any]) -> ToolCallData:
    call_id = str(call.get("id") or f"call_{index}")
    name = str(call.get("name") or "")
    args: object = call.get("args") or {}
    if not isinstance(args, dict):
        return ToolCallData(
            call_id=call_id,
            name=name,
            args_error=f"the arguments must be a JSON object, got {json.dumps(args)[:200]}",
        )
    return ToolCallData(call_id=call_id, name=name, args=cast(dict[str, JsonValue], args))


def _move(
    parts: list[dict[str, Any]], finish: str | None, usage: dict[str, Any], model: str | None
) -> Move:
    calls = [p["functionCall"] for p in parts if "functionCall" in p]
    # Kept when the parts hold what a Message cannot rebuild: signatures,
    # thoughts, or call ids Gemini chose.
    keep = any(
        "thoughtSignature" in p or p.get("thought") or "id" in (p.get("functionCall") or {})
        for p in parts
    )
    return clean_move(
        Move(
            text="".join(p["text"] for p in parts if "text" in p and not p.get("thought")),
            tool_calls=tuple(_decode_call(i, c) for i, c in enumerate(calls, start=1)),
            usage=decode_usage(usage),
            finish_reason=finish,
            model=model,
            provider_data={"gemini": {"parts": cast(list[JsonValue], parts)}} if keep else None,
        )
    )


def _parts(candidate: dict[str, Any]) -> list[dict[str, Any]]:
    content: dict[str, Any] = candidate.get("content") or {}
    return content.get("parts") or []


def _check(body: dict[str, Any]) -> None:
    if "error" in body:  # an error sent as an event, mid-stream
        raise ModelError(f"Gemini reported an error: {json.dumps(body['error'])[:500]}")
    feedback: dict[str, Any] = body.get("promptFeedback") or {}
    if reason := feedback.get("blockReason"):
        detail = feedback.get("blockReasonMessage") or ""
        raise ModelError(
            f"Gemini blocked the prompt ({reason}) {detail}; change the task or the files it reads"
        )


def decode_response(body: dict[str, Any]) -> Move:
    """Parse a ``GenerateContentResponse`` into a move.

    Text parts join into the text; ``thought: true`` parts are reasoning and
    stay out of it; ``functionCall`` parts become calls (Gemini's ``id``, else
    ``call_1``, ``call_2``... by position). All parts are kept as
    ``provider_data["gemini"]["parts"]`` when they hold signatures, thoughts or
    ids. Gemini API reference, "GenerateContentResponse".

    Raises:
        ModelError: the prompt was blocked (``promptFeedback.blockReason``,
            named in the message), or the body has no candidate, or is malformed.
    """
    try:
        _check(body)
        if not body.get("candidates"):
            raise ModelError(f"Gemini answered no candidate: {str(body)[:500]}")
        candidate = body["candidates"][0]
        usage: dict[str, Any] = body.get("usageMetadata") or {}
        finish = candidate.get("finishReason")
        return _move(_parts(candidate), finish, usage, body.get("modelVersion"))
    except _MALFORMED as exc:
        raise ModelError(
            f"malformed Gemini reply ({type(exc).__name__}: {exc}): {str(body)[:500]}"
        ) from exc


class _Assembly:
    """The reply so far, from chunks that each carry a few new parts."""

    def __init__(self, on_delta: OnDelta) -> None:
        self.on_delta = on_delta
        self.parts: list[dict[str, Any]] = []
        self.usage: dict[str, Any] = {}
        self.finish: str | None = None
        self.model: str | None = None

    def add_chunk(self, chunk: dict[str, Any]) -> None:
        _check(chunk)
        self.model = chunk.get("modelVersion") or self.model
        self.usage = chunk.get("usageMetadata") or self.usage
        candidates: list[dict[str, Any]] = chunk.get("candidates") or []
        for candidate in candidates[:1]:
            for part in _parts(candidate):
                self.add_part(part)
            self.finish = candidate.get("finishReason") or self.finish

    def add_part(self, part: dict[str, Any]) -> None:
        if "functionCall" in part:  # a call arrives whole
            call = part["functionCall"]
            index = sum("functionCall" in p for p in self.parts)
            args = json.dumps(call.get("args") or {})
            self.on_delta(Delta(call_index=index, call_name=call.get("name"), args_fragment=args))
            self.parts.append(dict(part))
            return
        text: str | None = part.get("text")
        thought = bool(part.get("thought"))
        if text:
            self.on_delta(Delta(thinking=text) if thought else Delta(text=text))
        last = self.parts[-1] if self.parts else {}
        same_kind = "text" in last and bool(last.get("thought")) == thought
        if text is not None and same_kind and "thoughtSignature" not in last:
            last["text"] += text  # one part per run of text, its signature at its end
            if "thoughtSignature" in part:
                last["thoughtSignature"] = part["thoughtSignature"]
        else:
            self.parts.append(dict(part))


async def decode_stream(events: AsyncIterator[tuple[str, Any]], on_delta: OnDelta) -> Move:
    """Assemble a move from ``streamGenerateContent?alt=sse`` events, sending
    each piece to ``on_delta``.

    Each event is a whole ``GenerateContentResponse`` with the next parts:
    text and thought text arrive in pieces (merged into one part per run, the
    ``thoughtSignature`` that may come last kept on it), function calls
    whole; the usage is the last ``usageMetadata`` seen (Gemini API reference,
    "streamGenerateContent"). A server that answered one JSON body instead is
    read as a one-chunk stream.

    Raises:
        ModelConnectionError: the stream ended before a ``finishReason``.
        ModelError: the prompt was blocked, an error event came, or a chunk is
            malformed.
    """
    assembly = _Assembly(on_delta)
    async for _, chunk in events:  # a body that is not a stream ("json") reads the same
        try:
            assembly.add_chunk(chunk)
        except _MALFORMED as exc:
            raise ModelError(f"malformed Gemini chunk ({exc}): {str(chunk)[:500]}") from exc
    if assembly.finish is None:
        raise ModelConnectionError(
            "the Gemini stream was cut off before a finishReason; it will be retried"
        )
    try:
        return _move(assembly.parts, assembly.finish, assembly.usage, assembly.model)
    except _MALFORMED as exc:
        raise ModelError(f"malformed Gemini stream ({exc}): {str(assembly.parts)[:500]}") from exc


def _retry_delay(body: str) -> float | None:
    # Gemini's 429 says how long to wait in the body, not a header: a
    # google.rpc.RetryInfo detail, `"retryDelay": "7s"` (Gemini API docs, "Rate limits").
    match = _RETRY_DELAY.search(body)
    return float(match.group(1)) if match else None


class GeminiModel:
    """A Gemini model behind the Gemini API (Google AI Studio keys).

    Args:
        name: the ``provider:model`` string it was made from (``gemini:gemini-2.5-flash``).
        model: the bare model id in the URL (``gemini-2.5-flash``).
        base_url: the API root, :data:`DEFAULT_BASE_URL` by default; given with
            or without a trailing ``/v1beta``.
        api_key: sent as ``x-goog-api-key``; ``None`` for a proxy that adds it.
        transport: an httpx transport, for tests (``httpx.MockTransport``).
        timeout_s: seconds to wait for a reply.
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
    ) -> None:
        self.name = name
        self.model = model
        self.pricing: Pricing = "google"
        self.context_window: int | None = None
        self.base_url = base_url.rstrip("/").removesuffix("/v1beta")
        headers = {"x-goog-api-key": api_key} if api_key else {}
        self._client = httpx.AsyncClient(headers=headers, timeout=timeout_s, transport=transport)

    async def request(self, request: ModelRequest, on_delta: OnDelta | None = None) -> Move:
        """POST the conversation and parse the move; streamed when ``on_delta`` is given.

        Raises:
            ModelHTTPError: the API answered an error status; a 429 carries the
                wait Google asked for (``Retry-After``, else the body's ``retryDelay``).
            ModelConnectionError: the API could not be reached, or the stream
                was cut off.
            ModelError: the prompt was blocked, or the reply is malformed.
        """
        path = f"{self.base_url}/v1beta/models/{self.model}"
        body = encode_request(request)
        try:
            if on_delta is None:
                reply = await post_json(self._client, self.name, f"{path}:generateContent", body)
                return decode_response(reply)
            url = f"{path}:streamGenerateContent?alt=sse"
            return await decode_stream(stream_events(self._client, self.name, url, body), on_delta)
        except ModelHTTPError as exc:
            if exc.retry_after_s is None:
                exc.retry_after_s = _retry_delay(exc.body)
            raise

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()
