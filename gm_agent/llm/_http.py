"""HTTP for every provider: one JSON POST, one SSE stream, one way to fail.

Each provider module builds its wire body and parses the reply; this module
sends it and turns transport failures into :mod:`gm_agent.errors`:

- no connection, a timeout, a stream cut off: :class:`ModelConnectionError`
  (retryable);
- an error status: :class:`ModelHTTPError` with the provider's message and how
  long the provider asked to wait (:func:`retry_after`);
- a body that is not JSON: :class:`ModelError`.

SSE parsing is httpx-sse's (the WHATWG HTML "server-sent events" format).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from httpx_sse import SSEError, aconnect_sse

from gm_agent.errors import ModelConnectionError, ModelError, ModelHTTPError

__all__ = ["post_json", "retry_after", "stream_events"]

_DURATION = re.compile(
    r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$"
)


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds the provider asks us to wait before trying again, if it says.

    In order: ``Retry-After`` (RFC 9110 §10.2.3: delay-seconds, or an HTTP-date
    measured against the response's own ``Date`` header, so no local clock is
    read); ``retry-after-ms`` (OpenAI, Azure); then the longest of OpenAI's
    ``x-ratelimit-reset-requests`` / ``x-ratelimit-reset-tokens`` durations
    (``1s``, ``6m0s``, ``120ms``; OpenAI docs, "Rate limits"). Unparseable
    values give ``None``.
    """
    value = headers.get("retry-after")
    if value is not None:
        try:
            return max(float(value), 0.0)
        except ValueError:
            pass
        try:
            until = parsedate_to_datetime(value)
            now = parsedate_to_datetime(headers["date"])
            return max((until - now).total_seconds(), 0.0)
        except (KeyError, TypeError, ValueError):
            pass
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(float(millis) / 1000, 0.0)
        except ValueError:
            pass
    resets = [
        _duration_s(headers[name])
        for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
        if name in headers
    ]
    known = [r for r in resets if r is not None]
    return max(known) if known else None


def _duration_s(text: str) -> float | None:
    match = _DURATION.match(text.strip())
    if not match or not any(match.groups()):
        return None
    hours, minutes, seconds, millis = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def _http_error(provider: str, response: httpx.Response, body: str) -> ModelHTTPError:
    return ModelHTTPError(provider, response.status_code, body, retry_after(response.headers))


async def post_json(
    client: httpx.AsyncClient,
    provider: str,
    url: str,
    body: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """POST ``body`` as JSON to ``url`` and return the JSON object it answers.

    ``provider`` names the model in error messages (``anthropic:claude-...``).

    Raises:
        ModelConnectionError: no connection or no answer in time.
        ModelHTTPError: an error status.
        ModelError: the answer is not a JSON object.
    """
    try:
        response = await client.post(url, json=body, headers=dict(headers or {}))
    except httpx.HTTPError as exc:
        raise ModelConnectionError(
            f"cannot reach {url!r}: {exc!r}; is the server running?"
        ) from exc
    if response.status_code >= 400:
        raise _http_error(provider, response, response.text)
    try:
        parsed: object = response.json()
    except ValueError as exc:
        raise ModelError(
            f"{url!r} answered with a body that is not JSON: {response.text[:500]!r}"
        ) from exc
    if not isinstance(parsed, dict):
        raise ModelError(f"{url!r} answered JSON that is not an object: {response.text[:500]!r}")
    return parsed  # pyright: ignore[reportUnknownVariableType]


async def stream_events(
    client: httpx.AsyncClient,
    provider: str,
    url: str,
    body: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
) -> AsyncIterator[tuple[str, Any]]:
    """POST ``body`` and yield each server-sent event as ``(event name, parsed data)``.

    The event name is ``message`` when the stream gives none. A ``data`` of
    ``[DONE]`` (OpenAI's end marker) ends the stream. A server that answers
    plain JSON instead of a stream yields one ``("json", body)``. Closing the iterator (or
    cancelling its task) closes the connection: the provider stops generating.

    Raises:
        ModelConnectionError: no connection, or the stream was cut off.
        ModelHTTPError: an error status (its body read in full).
        ModelError: an event's data is not JSON.
    """
    try:
        async with aconnect_sse(
            client, "POST", url, json=body, headers=dict(headers or {})
        ) as source:
            response = source.response
            if response.status_code >= 400:
                text = (await response.aread()).decode("utf-8", "replace")
                raise _http_error(provider, response, text)
            if "text/event-stream" not in response.headers.get("content-type", ""):
                # A server that ignores `stream: true` answers one JSON body.
                text = (await response.aread()).decode("utf-8", "replace")
                try:
                    yield "json", json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ModelError(
                        f"{url!r} answered with a body that is neither an event stream "
                        f"nor JSON: {text[:500]!r}"
                    ) from exc
                return
            async for sse in source.aiter_sse():
                if sse.data == "[DONE]":
                    return
                if not sse.data:
                    continue
                try:
                    data = json.loads(sse.data)
                except json.JSONDecodeError as exc:
                    raise ModelError(
                        f"{provider} streamed an event that is not JSON: {sse.data[:500]!r}"
                    ) from exc
                yield sse.event or "message", data
    except SSEError as exc:
        raise ModelError(f"{provider} sent a malformed event stream: {exc}") from exc
    except httpx.HTTPError as exc:
        raise ModelConnectionError(
            f"the stream from {url!r} was cut off: {exc!r}; it will be retried"
        ) from exc
