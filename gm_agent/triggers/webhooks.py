"""Webhooks for ``gm serve``: an ASGI app that checks each delivery and hands it on.

Every :class:`~gm_agent.settings.WebhookTrigger` gets one POST route at its ``path``.
A request is checked in this order, and the first failure refuses it:

1. size: ``Content-Length`` above ``max_body_bytes`` is refused before any byte is
   read, and so is a streamed body as soon as it passes the limit (413);
2. the secret: read from the environment at request time (500 if unset);
3. the signature, over the raw bytes, before anything parses them (401): GitHub's
   ``X-Hub-Signature-256`` (GitHub docs, "Validating webhook deliveries") or the
   Standard Webhooks headers (the Standard Webhooks spec, via its reference library);
4. the delivery id (400) and the body, which must be a JSON object or array (400).

A refusal calls ``on_rejected`` and answers ``{"error": reason}``. An accepted
delivery goes to ``on_delivery``, which decides what happens (a new run, a redelivery
already seen, or a trigger at its limit); this module only maps that answer to HTTP.
A path that is no trigger's gets a plain 404 and is not reported: scanners knock on
every door and the journal is not the place for them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Literal, NoReturn, assert_never

from pydantic import JsonValue
from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gm_agent.settings import WebhookTrigger

__all__ = ["Accepted", "Delivery", "Rejection", "sign_github", "webhook_app"]

Accepted = Literal["started", "duplicate", "busy", "skipped", "ignored"]
"""What ``on_delivery`` did with a delivery.

``started``: a run began (HTTP 202). ``duplicate``: this delivery id was seen before,
so nothing new runs (HTTP 200; senders redeliver, and a redelivery is acknowledged,
not run twice). ``busy``: the trigger already runs ``max_concurrent`` runs, so this
firing is skipped (HTTP 202; not the sender's fault, and a retry would not help).
``skipped``: the trigger's task could not be run (a template or model error,
journaled with the firing; HTTP 202, the sender cannot fix it). ``ignored``: an
event the trigger does not take (its ``events`` filter, GitHub's ``ping``; HTTP 200).
"""


@dataclass(frozen=True)
class Delivery:
    """A webhook delivery whose signature checked out.

    Attributes:
        trigger: the trigger whose path received it.
        delivery_id: the sender's id for this delivery, the same on a redelivery:
            GitHub's ``X-GitHub-Delivery`` (a UUID), or Standard Webhooks' ``webhook-id``.
        event: GitHub's ``X-GitHub-Event`` (e.g. ``"pull_request"``; None if absent);
            for Standard Webhooks, the payload's ``"type"`` when it is a string, else None.
        payload: the parsed JSON body, an object or an array.
    """

    trigger: WebhookTrigger
    delivery_id: str
    event: str | None
    payload: JsonValue


@dataclass(frozen=True)
class Rejection:
    """A request to a trigger's path that was refused, for the journal.

    Attributes:
        trigger: the trigger's name (None is reserved for a path no trigger has; this
            app does not report those).
        path: the request's path.
        status: the HTTP status sent back (400, 401, 413 or 500).
        reason: why, in words; names the environment variable when the secret is
            missing, never the secret itself.
        delivery_id: the delivery id the request claims (its header), or None. When the
            refusal is about the signature, nothing vouches for it.
    """

    trigger: str | None
    path: str
    status: int
    reason: str
    delivery_id: str | None


OnDelivery = Callable[[Delivery], Awaitable[tuple[Accepted, str | None]]]
OnRejected = Callable[[Rejection], Awaitable[None]]

_DELIVERY_ID_HEADER = {"github": "x-github-delivery", "standard": "webhook-id"}


def sign_github(secret: str, body: bytes) -> str:
    """GitHub's ``X-Hub-Signature-256`` value for ``body``: ``sha256=`` and 64 hex digits.

    The HMAC-SHA256 of the raw body keyed with the UTF-8 secret, hex in lower case
    (GitHub docs, "Validating webhook deliveries").
    """
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def webhook_app(
    triggers: Sequence[WebhookTrigger],
    environ: Mapping[str, str],
    *,
    max_body_bytes: int,
    on_delivery: OnDelivery,
    on_rejected: OnRejected,
) -> Starlette:
    """The ASGI app serving ``triggers``' webhooks.

    Args:
        triggers: one POST route each, at ``trigger.path``.
        environ: where ``trigger.secret_env`` is looked up, on every request (so a
            secret set or rotated later is seen); usually ``os.environ``.
        max_body_bytes: the largest body accepted, in bytes.
        on_delivery: called with each delivery that passed every check; returns what
            it did and the run's id (or None). If it raises, the sender gets a 500
            with the exception's message and ``on_rejected`` hears of it.
        on_rejected: called once per refused request to a trigger's path, before the
            answer is sent.

    Other methods on a trigger's path get 405 and other paths 404 (both
    ``{"error": ...}``), neither reported to ``on_rejected``.

    Raises:
        ValueError: two triggers share a path, or ``max_body_bytes`` is below 1.
    """
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be at least 1, not {max_body_bytes}")
    _check_unique_paths(triggers)
    receiver = _Receiver(environ, max_body_bytes, on_delivery, on_rejected)
    routes = [Route(t.path, receiver.endpoint(t), methods=["POST"]) for t in triggers]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    app.router.redirect_slashes = False
    return app


def _check_unique_paths(triggers: Sequence[WebhookTrigger]) -> None:
    owners: dict[str, str] = {}
    for trigger in triggers:
        if trigger.path in owners:
            raise ValueError(
                f"triggers {owners[trigger.path]!r} and {trigger.name!r} share the path {trigger.path}"
            )
        owners[trigger.path] = trigger.name


async def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):
        raise exc
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _refuse(status: int, reason: str) -> NoReturn:
    raise _Refused(status, reason)


@dataclass(frozen=True)
class _Receiver:
    environ: Mapping[str, str]
    max_body_bytes: int
    on_delivery: OnDelivery
    on_rejected: OnRejected

    def endpoint(self, trigger: WebhookTrigger) -> Callable[[Request], Awaitable[Response]]:
        async def receive(request: Request) -> Response:
            return await self.handle(trigger, request)

        return receive

    async def handle(self, trigger: WebhookTrigger, request: Request) -> Response:
        claimed_id = request.headers.get(_DELIVERY_ID_HEADER[trigger.format]) or None
        try:
            delivery = await self.check(trigger, request)
        except _Refused as refused:
            return await self.reject(trigger, refused.status, refused.reason, claimed_id)
        try:
            accepted, run_id = await self.on_delivery(delivery)
        except Exception as exc:
            reason = f"the delivery could not be handled: {_message(exc)}"
            return await self.reject(trigger, 500, reason, delivery.delivery_id)
        return _acknowledge(accepted, run_id)

    async def check(self, trigger: WebhookTrigger, request: Request) -> Delivery:
        _check_declared_length(request.headers, self.max_body_bytes)
        secret = self.environ.get(trigger.secret_env, "")
        if not secret:
            _refuse(500, f"the secret is not configured: set {trigger.secret_env}")
        if trigger.format == "github":
            body = await _read_body(request, self.max_body_bytes)
            delivery_id, event = _verify_github(secret, body, request.headers)
            return Delivery(trigger, delivery_id, event, _parse_json(body))
        webhook = _standard_webhook(secret, trigger.secret_env)
        body = await _read_body(request, self.max_body_bytes)
        delivery_id = _verify_standard(webhook, body, request.headers)
        payload = _parse_json(body)
        return Delivery(trigger, delivery_id, _payload_type(payload), payload)

    async def reject(
        self, trigger: WebhookTrigger, status: int, reason: str, delivery_id: str | None
    ) -> Response:
        await self.on_rejected(Rejection(trigger.name, trigger.path, status, reason, delivery_id))
        return JSONResponse({"error": reason}, status_code=status)


def _check_declared_length(headers: Headers, limit: int) -> None:
    declared = headers.get("content-length")
    if declared is None:
        return
    if not (declared.isascii() and declared.isdigit()):
        _refuse(400, "the Content-Length header is not a number")
    if int(declared) > limit:
        _refuse(413, f"the body is larger than {limit} bytes (Content-Length: {declared})")


async def _read_body(request: Request, limit: int) -> bytes:
    body = bytearray()
    try:
        async with aclosing(request.stream()) as chunks:
            async for chunk in chunks:
                if len(body) + len(chunk) > limit:
                    _refuse(413, f"the body is larger than {limit} bytes")
                body += chunk
    except ClientDisconnect:
        _refuse(400, "the sender disconnected before the body was complete")
    return bytes(body)


def _verify_github(secret: str, body: bytes, headers: Headers) -> tuple[str, str | None]:
    given = headers.get("x-hub-signature-256")
    if not given:
        _refuse(401, "missing X-Hub-Signature-256")
    expected = sign_github(secret, body)
    if not hmac.compare_digest(expected.encode(), given.encode("latin-1")):
        _refuse(401, "signature does not match")
    delivery_id = headers.get("x-github-delivery")
    if not delivery_id:
        _refuse(400, "missing X-GitHub-Delivery")
    return delivery_id, headers.get("x-github-event") or None


def _standard_webhook(secret: str, secret_env: str) -> Webhook:
    try:
        return Webhook(secret)
    except (ValueError, EmptyWebhookSecretError):
        _refuse(
            500, f"the secret in {secret_env} is not a Standard Webhooks secret (whsec_<base64>)"
        )


def _verify_standard(webhook: Webhook, body: bytes, headers: Headers) -> str:
    try:
        text = body.decode()
    except UnicodeDecodeError:
        _refuse(401, "the body is not UTF-8, so its signature cannot be checked")
    try:
        webhook.verify(text, dict(headers), json_parse=False)
    except WebhookVerificationError as exc:
        _refuse(401, str(exc))
    except ValueError:
        _refuse(401, "malformed webhook-signature header")
    return headers["webhook-id"]


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON value")


def _parse_json(body: bytes) -> JsonValue:
    try:
        payload: JsonValue = json.loads(body, parse_constant=_reject_constant)
    except ValueError as exc:
        _refuse(400, f"the body is not JSON: {exc}")
    except RecursionError:
        _refuse(400, "the body is not JSON: nested too deeply")
    if not isinstance(payload, dict | list):
        _refuse(400, f"the body is not JSON: expected an object or an array, not {_kind(payload)}")
    return payload


def _kind(value: JsonValue) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a string" if isinstance(value, str) else "a number"


def _payload_type(payload: JsonValue) -> str | None:
    if isinstance(payload, dict):
        kind = payload.get("type")
        if isinstance(kind, str):
            return kind
    return None


def _message(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def _acknowledge(accepted: Accepted, run_id: str | None) -> Response:
    match accepted:
        case "started":
            return JSONResponse({"status": "started", "run_id": run_id}, status_code=202)
        case "duplicate":
            return JSONResponse({"status": "duplicate", "run_id": run_id}, status_code=200)
        case "busy" | "skipped":
            return JSONResponse({"status": accepted}, status_code=202)
        case "ignored":
            return JSONResponse({"status": "ignored"}, status_code=200)
        case _:
            assert_never(accepted)
