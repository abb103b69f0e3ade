"""Webhook deliveries: signed the way GitHub and Standard Webhooks sign, checked, handed on.

The GitHub payloads are real (octokit/webhooks examples, ../shared/fixtures/README.md),
signed as GitHub signs them: HMAC-SHA256 of the raw bytes.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import anyio
import httpx
import pytest
import uvicorn
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette

from gm_agent.clock import SystemClock
from gm_agent.settings import WebhookTrigger
from gm_agent.triggers.webhooks import (
    Accepted,
    Delivery,
    Rejection,
    sign_github,
    webhook_app,
)

pytestmark = pytest.mark.anyio

GITHUB_PAYLOADS = (
    Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "webhooks" / "github"
)
SECRET = "It's a Secret to Everybody"
STANDARD_SECRET = "whsec_" + base64.b64encode(b"standard webhooks test key 32 by").decode()
OTHER_STANDARD_SECRET = "whsec_" + base64.b64encode(b"someone else's key, 32 bytes lng").decode()
LIMIT = 64 * 1024
DELIVERY_ID = "72d3162e-cc78-11e3-81ab-4c9367dc0958"

GITHUB = WebhookTrigger(
    name="review",
    task="Review the pull request",
    on="webhook",
    path="/hooks/github",
    secret_env="GH_WEBHOOK_SECRET",
)
STANDARD = WebhookTrigger(
    name="billing",
    task="Reconcile the invoice",
    on="webhook",
    path="/hooks/billing",
    format="standard",
    secret_env="BILLING_WEBHOOK_SECRET",
)
ENVIRON = {"GH_WEBHOOK_SECRET": SECRET, "BILLING_WEBHOOK_SECRET": STANDARD_SECRET}


@dataclass
class Sink:
    """Stands in for `gm serve`: records what reaches it and answers as told."""

    answer: tuple[Accepted, str | None] = ("started", "01JRUNID")
    failure: Exception | None = None
    deliveries: list[Delivery] = field(default_factory=list[Delivery])
    rejections: list[Rejection] = field(default_factory=list[Rejection])

    async def on_delivery(self, delivery: Delivery) -> tuple[Accepted, str | None]:
        self.deliveries.append(delivery)
        if self.failure is not None:
            raise self.failure
        return self.answer

    async def on_rejected(self, rejection: Rejection) -> None:
        self.rejections.append(rejection)


def payload_bytes(name: str) -> bytes:
    return (GITHUB_PAYLOADS / name).read_bytes()


def github_headers(body: bytes, *, event: str = "pull_request") -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": DELIVERY_ID,
        "X-Hub-Signature-256": sign_github(SECRET, body),
    }


def standard_headers(
    body: bytes, *, secret: str = STANDARD_SECRET, age: timedelta = timedelta(0)
) -> dict[str, str]:
    sent_at = SystemClock().now() - age
    signature = Webhook(secret).sign("msg_2Lh9KRb0pzN4LePd3XiA", sent_at, body.decode())
    return {
        "Content-Type": "application/json",
        "webhook-id": "msg_2Lh9KRb0pzN4LePd3XiA",
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature,
    }


def app_for(sink: Sink, environ: dict[str, str] | None = None) -> Starlette:
    return webhook_app(
        [GITHUB, STANDARD],
        ENVIRON if environ is None else environ,
        max_body_bytes=LIMIT,
        on_delivery=sink.on_delivery,
        on_rejected=sink.on_rejected,
    )


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
async def client(sink: Sink) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app_for(sink))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as opened:
        yield opened


def assert_refused_once(sink: Sink, response: httpx.Response, status: int, reason: str) -> None:
    assert response.status_code == status
    assert response.json() == {"error": reason}
    assert [(r.status, r.reason) for r in sink.rejections] == [(status, reason)]
    assert sink.deliveries == []
    assert SECRET not in reason and STANDARD_SECRET not in reason


def test_sign_github_matches_the_example_in_githubs_docs() -> None:
    assert sign_github("It's a Secret to Everybody", b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


async def test_a_signed_pull_request_reaches_on_delivery_and_starts_a_run(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    body = payload_bytes("pull_request/opened.payload.json")

    response = await client.post("/hooks/github", content=body, headers=github_headers(body))

    assert response.status_code == 202
    assert response.json() == {"status": "started", "run_id": "01JRUNID"}
    [delivery] = sink.deliveries
    assert delivery.trigger == GITHUB
    assert delivery.delivery_id == DELIVERY_ID
    assert delivery.event == "pull_request"
    assert delivery.payload == json.loads(body)
    assert sink.rejections == []


@pytest.mark.parametrize(
    ("name", "event"),
    [
        ("ping/payload.json", "ping"),
        ("push/payload.json", "push"),
        ("issues/opened.payload.json", "issues"),
        ("pull_request/opened.with-null-body.json", "pull_request"),
    ],
)
async def test_every_real_github_event_is_accepted_when_signed(
    client: httpx.AsyncClient, sink: Sink, name: str, event: str
) -> None:
    body = payload_bytes(name)

    response = await client.post(
        "/hooks/github", content=body, headers=github_headers(body, event=event)
    )

    assert response.status_code == 202
    assert [(d.event, d.payload) for d in sink.deliveries] == [(event, json.loads(body))]


async def test_a_signature_that_does_not_match_is_refused_401(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    body = payload_bytes("pull_request/opened.payload.json")
    headers = github_headers(body) | {"X-Hub-Signature-256": sign_github("guess", body)}

    response = await client.post("/hooks/github", content=body, headers=headers)

    assert_refused_once(sink, response, 401, "signature does not match")
    assert sink.rejections == [
        Rejection("review", "/hooks/github", 401, "signature does not match", DELIVERY_ID)
    ]


async def test_a_body_changed_after_signing_is_refused_401(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    body = payload_bytes("pull_request/opened.payload.json")
    tampered = body.replace(b'"opened"', b'"closed"', 1)

    response = await client.post("/hooks/github", content=tampered, headers=github_headers(body))

    assert_refused_once(sink, response, 401, "signature does not match")


async def test_a_missing_signature_is_refused_401(client: httpx.AsyncClient, sink: Sink) -> None:
    body = payload_bytes("ping/payload.json")
    headers = github_headers(body, event="ping")
    del headers["X-Hub-Signature-256"]

    response = await client.post("/hooks/github", content=body, headers=headers)

    assert_refused_once(sink, response, 401, "missing X-Hub-Signature-256")


async def test_a_missing_delivery_id_is_refused_400(client: httpx.AsyncClient, sink: Sink) -> None:
    body = payload_bytes("ping/payload.json")
    headers = github_headers(body, event="ping")
    del headers["X-GitHub-Delivery"]

    response = await client.post("/hooks/github", content=body, headers=headers)

    assert_refused_once(sink, response, 400, "missing X-GitHub-Delivery")
    assert sink.rejections[0].delivery_id is None


async def test_a_content_length_over_the_limit_is_refused_413(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    body = b"[" + b"0," * LIMIT + b"0]"

    response = await client.post("/hooks/github", content=body, headers=github_headers(body))

    reason = f"the body is larger than {LIMIT} bytes (Content-Length: {len(body)})"
    assert_refused_once(sink, response, 413, reason)


async def test_a_streamed_body_is_refused_413_once_it_passes_the_limit_and_not_read_further(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    chunk = b" " * 1024
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for index in range(1000):
            sent.append(index)
            yield chunk

    response = await client.post(
        "/hooks/github", content=chunks(), headers=github_headers(chunk * 1000)
    )

    assert "content-length" not in response.request.headers
    assert_refused_once(sink, response, 413, f"the body is larger than {LIMIT} bytes")
    assert len(sent) == LIMIT // len(chunk) + 1


async def test_a_body_that_is_not_json_is_refused_400_after_its_signature_is_checked(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    body = b"action=opened&number=1"

    response = await client.post("/hooks/github", content=body, headers=github_headers(body))

    assert_refused_once(
        sink, response, 400, "the body is not JSON: Expecting value: line 1 column 1 (char 0)"
    )


async def test_a_body_that_is_not_json_and_not_signed_is_refused_401_not_400(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    body = b"action=opened&number=1"
    headers = github_headers(body) | {"X-Hub-Signature-256": sign_github("guess", body)}

    response = await client.post("/hooks/github", content=body, headers=headers)

    assert_refused_once(sink, response, 401, "signature does not match")


async def test_a_json_scalar_is_refused_400(client: httpx.AsyncClient, sink: Sink) -> None:
    body = b'"opened"'

    response = await client.post("/hooks/github", content=body, headers=github_headers(body))

    assert_refused_once(
        sink, response, 400, "the body is not JSON: expected an object or an array, not a string"
    )


async def test_an_unconfigured_secret_is_refused_500_naming_the_variable(sink: Sink) -> None:
    body = payload_bytes("ping/payload.json")
    transport = httpx.ASGITransport(app=app_for(sink, environ={"GH_WEBHOOK_SECRET": ""}))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/hooks/github", content=body, headers=github_headers(body))

    assert_refused_once(sink, response, 500, "the secret is not configured: set GH_WEBHOOK_SECRET")


async def test_the_secret_is_read_at_request_time(sink: Sink) -> None:
    environ: dict[str, str] = {}
    body = payload_bytes("ping/payload.json")
    transport = httpx.ASGITransport(app=app_for(sink, environ=environ))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        before = await client.post("/hooks/github", content=body, headers=github_headers(body))
        environ["GH_WEBHOOK_SECRET"] = SECRET
        after = await client.post("/hooks/github", content=body, headers=github_headers(body))

    assert (before.status_code, after.status_code) == (500, 202)


async def test_a_redelivery_the_caller_calls_duplicate_is_acknowledged_200(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    sink.answer = ("duplicate", "01JEARLIERRUN")
    body = payload_bytes("pull_request/opened.payload.json")

    response = await client.post("/hooks/github", content=body, headers=github_headers(body))

    assert response.status_code == 200
    assert response.json() == {"status": "duplicate", "run_id": "01JEARLIERRUN"}
    assert sink.rejections == []


async def test_a_trigger_at_its_limit_answers_busy_202(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    sink.answer = ("busy", None)
    body = payload_bytes("pull_request/opened.payload.json")

    response = await client.post("/hooks/github", content=body, headers=github_headers(body))

    assert response.status_code == 202
    assert response.json() == {"status": "busy"}


async def test_a_failing_on_delivery_answers_500_with_its_message_only(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    sink.failure = RuntimeError("the journal is locked")
    body = payload_bytes("pull_request/opened.payload.json")

    response = await client.post("/hooks/github", content=body, headers=github_headers(body))

    reason = "the delivery could not be handled: the journal is locked"
    assert response.status_code == 500
    assert response.json() == {"error": reason}
    assert sink.rejections == [Rejection("review", "/hooks/github", 500, reason, DELIVERY_ID)]


@pytest.mark.parametrize("path", ["/", "/wp-login.php", "/hooks/github/", "/hooks"])
async def test_an_unknown_path_is_404_and_not_reported(
    client: httpx.AsyncClient, sink: Sink, path: str
) -> None:
    body = payload_bytes("ping/payload.json")

    response = await client.post(path, content=body, headers=github_headers(body))

    assert response.status_code == 404
    assert sink.rejections == [] and sink.deliveries == []


async def test_a_get_on_a_trigger_path_is_405(client: httpx.AsyncClient, sink: Sink) -> None:
    response = await client.get("/hooks/github")

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert sink.rejections == [] and sink.deliveries == []


def test_two_triggers_on_one_path_are_a_configuration_error(sink: Sink) -> None:
    twin = GITHUB.model_copy(update={"name": "twin"})

    with pytest.raises(ValueError, match="'review' and 'twin' share the path /hooks/github"):
        webhook_app(
            [GITHUB, twin],
            ENVIRON,
            max_body_bytes=LIMIT,
            on_delivery=sink.on_delivery,
            on_rejected=sink.on_rejected,
        )


async def test_a_standard_webhook_with_a_valid_signature_is_delivered(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    body = b'{"type": "invoice.paid", "data": {"id": "in_1", "amount": 4200}}'

    response = await client.post("/hooks/billing", content=body, headers=standard_headers(body))

    assert response.status_code == 202
    [delivery] = sink.deliveries
    assert delivery.trigger == STANDARD
    assert delivery.delivery_id == "msg_2Lh9KRb0pzN4LePd3XiA"
    assert delivery.event == "invoice.paid"
    assert delivery.payload == {"type": "invoice.paid", "data": {"id": "in_1", "amount": 4200}}


async def test_a_standard_webhook_without_a_type_has_no_event(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    body = b'[{"id": 1}, {"id": 2}]'

    response = await client.post("/hooks/billing", content=body, headers=standard_headers(body))

    assert response.status_code == 202
    assert [(d.event, d.payload) for d in sink.deliveries] == [(None, [{"id": 1}, {"id": 2}])]


async def test_a_standard_webhook_ten_minutes_old_is_refused_401(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    body = b'{"type": "invoice.paid"}'
    headers = standard_headers(body, age=timedelta(minutes=10))

    response = await client.post("/hooks/billing", content=body, headers=headers)

    assert_refused_once(sink, response, 401, "Message timestamp too old")
    assert sink.rejections[0].delivery_id == "msg_2Lh9KRb0pzN4LePd3XiA"


async def test_a_standard_webhook_signed_with_another_secret_is_refused_401(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    body = b'{"type": "invoice.paid"}'
    headers = standard_headers(body, secret=OTHER_STANDARD_SECRET)

    response = await client.post("/hooks/billing", content=body, headers=headers)

    assert_refused_once(sink, response, 401, "No matching signature found")


async def test_a_standard_webhook_without_its_headers_is_refused_401(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    body = b'{"type": "invoice.paid"}'

    response = await client.post("/hooks/billing", content=body)

    assert_refused_once(sink, response, 401, "Missing required headers")


async def test_a_malformed_standard_signature_header_is_refused_401(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    body = b'{"type": "invoice.paid"}'
    headers = standard_headers(body) | {"webhook-signature": "v1-no-comma"}

    response = await client.post("/hooks/billing", content=body, headers=headers)

    assert_refused_once(sink, response, 401, "malformed webhook-signature header")


async def test_a_standard_secret_that_is_not_base64_is_refused_500_naming_the_variable(
    sink: Sink,
) -> None:
    body = b'{"type": "invoice.paid"}'
    environ = ENVIRON | {"BILLING_WEBHOOK_SECRET": "whsec_!"}
    transport = httpx.ASGITransport(app=app_for(sink, environ=environ))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/hooks/billing", content=body, headers=standard_headers(body))

    reason = (
        "the secret in BILLING_WEBHOOK_SECRET is not a Standard Webhooks secret (whsec_<base64>)"
    )
    assert_refused_once(sink, response, 500, reason)


@asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[str]:
    """Run ``app`` under a real uvicorn on 127.0.0.1 in this event loop; yield its URL.

    The socket is bound and listening before uvicorn starts, so connections made
    meanwhile wait in the backlog: no race for the port, no polling for readiness.
    """
    config = uvicorn.Config(app, lifespan="off", ws="none", log_level="warning", log_config=None)
    server = uvicorn.Server(config)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve, [listener])
            try:
                yield f"http://127.0.0.1:{listener.getsockname()[1]}"
            finally:
                server.should_exit = True


async def test_a_real_server_on_127_0_0_1_takes_a_signed_delivery_over_http(sink: Sink) -> None:
    body = payload_bytes("pull_request/opened.payload.json")

    with anyio.fail_after(20):
        async with serving(app_for(sink)) as url, httpx.AsyncClient(base_url=url) as client:
            accepted = await client.post(
                "/hooks/github", content=body, headers=github_headers(body)
            )
            forged = await client.post("/hooks/github", content=body, headers=github_headers(b"{}"))

            assert accepted.status_code == 202
            assert accepted.json() == {"status": "started", "run_id": "01JRUNID"}
            assert forged.status_code == 401
    assert [d.payload for d in sink.deliveries] == [json.loads(body)]
    assert [r.reason for r in sink.rejections] == ["signature does not match"]
