"""`gm run` end to end against each provider's recorded replies, served over real
HTTP on 127.0.0.1 and reached through the provider's ``*_BASE_URL`` variable."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.conftest import gm, gm_process
from tests.helpers import JsonProvider, interactions, serving, write_task

CASSETTES = (
    Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "llm" / "pydantic-ai-cassettes"
)


class _Recorded(JsonProvider):
    """Answers each POST with the next recorded reply; remembers what it was sent."""

    replies: ClassVar[list[dict[str, Any]]] = []
    seen: ClassVar[list[tuple[str, dict[str, str], dict[str, Any]]]] = []

    def answer(self, sent: dict[str, Any]) -> tuple[int, object, dict[str, str]]:
        type(self).seen.append((self.path, dict(self.headers), sent))
        return 200, type(self).replies[len(type(self).seen) - 1], {}


@pytest.fixture
def recorded_server() -> Iterator[str]:
    _Recorded.seen = []
    with serving(_Recorded) as url:
        yield url


PROVIDERS = {
    # provider: (cassette, model, base URL variable, key variable, path, key header).
    # `gm run` shows replies as they stream, so it asks Anthropic and Gemini for a
    # stream; this server answers plain JSON, as a server that ignores it does.
    "openai": ("openai", "openai:gpt-5-mini", "OPENAI_BASE_URL", "OPENAI_API_KEY", "/v1/chat/completions", "authorization"),
    "anthropic": ("anthropic", "anthropic:claude-sonnet-4-5", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "/v1/messages", "x-api-key"),
    "gemini": ("google", "gemini:gemini-2.5-flash", "GEMINI_BASE_URL", "GEMINI_API_KEY", "/v1beta/models/gemini-2.5-flash:streamGenerateContent", "x-goog-api-key"),
}  # fmt: skip


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_a_run_against_recorded_provider_replies(
    workspace: Path, recorded_server: str, provider: str
) -> None:
    cassette, model, url_var, key_var, path, key_header = PROVIDERS[provider]
    recorded = interactions(f"test_tool_choice_matrixauto-{cassette}.yaml")
    _Recorded.replies = [i["response"]["parsed_body"] for i in recorded]
    base = f"{recorded_server}/v1" if provider == "openai" else recorded_server
    env = {url_var: base, key_var: "test-key-0123456789"}
    task = write_task(workspace / "task.md", "What's the weather in Paris?", model=model)
    result = gm("run", str(task), "--json", cwd=workspace, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    responses = [e["data"] for e in events if e["kind"] == "model.response"]
    # The model asked for a tool gm does not have, heard so, and answered in text.
    assert responses[0]["tool_calls"][0]["name"] == "get_weather"
    (returned,) = [e["data"] for e in events if e["kind"] == "tool.returned"]
    assert not returned["ok"] and "unknown tool 'get_weather'" in returned["output"]
    (finished,) = [e["data"] for e in events if e["kind"] == "run.finished"]
    assert finished["status"] == "succeeded" and "Paris" in finished["summary"]
    assert all(r["usage"]["input_tokens"] > 0 for r in responses)
    assert all(isinstance(r["cost_usd"], float) and r["cost_usd"] > 0 for r in responses)
    (sent_path, headers, _), (_, _, second) = _Recorded.seen
    assert sent_path.split("?")[0] == path
    assert "test-key-0123456789" in headers.get(key_header, headers.get(key_header.title(), ""))
    assert "get_weather" in json.dumps(second)  # the call went back with its result


class _EndlessStream(BaseHTTPRequestHandler):
    """An Anthropic stream that starts a reply, then only pings until the client leaves."""

    started = threading.Event()
    left = threading.Event()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        opening = [
            {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [], "usage": {"input_tokens": 10, "output_tokens": 1}}},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me think this through"}},
        ]  # fmt: skip
        try:
            for event in opening:
                self.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
            type(self).started.set()
            for _ in range(600):  # a minute at most
                time.sleep(0.1)
                self.wfile.write(b'event: ping\ndata: {"type": "ping"}\n\n')
                self.wfile.flush()
        except OSError:  # the client closed the connection: the stream was cancelled
            type(self).left.set()

    def log_message(self, format: str, *args: object) -> None:
        del format, args


def test_interrupting_a_run_cancels_the_stream_mid_way(workspace: Path) -> None:
    with serving(_EndlessStream) as url:
        task = write_task(workspace / "task.md", "Think.", model="anthropic:claude-sonnet-4-5")
        env = {"ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": "test-key-0123456789"}
        process = gm_process("run", str(task), cwd=workspace, env=env)
        try:
            assert _EndlessStream.started.wait(60), "gm never asked the model"
            time.sleep(0.3)  # the streamed text reaches gm's output
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=30)
        finally:
            process.kill()
        assert process.returncode == 130, out + err
        assert _EndlessStream.left.wait(10), "the stream went on after the run stopped"
    assert "Let me think this through" in out  # streamed live before the interruption
    logged = gm("log", "--json", "last", cwd=workspace)
    kinds = [json.loads(line)["kind"] for line in logged.stdout.splitlines()]
    assert "model.response" not in kinds  # a partial reply is never journaled
    assert kinds[-3:] == ["job.cancelled", "run.status_changed", "checkpoint.saved"]
    (run,) = (json.loads(gm("runs", "--json", cwd=workspace).stdout.splitlines()[0]),)
    assert run["status"] == "paused"  # `gm resume` asks again
