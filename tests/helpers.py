"""Small builders that keep tests readable."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from gm_agent.clock import FakeClock
from gm_agent.events import AnyEventData, Event, new_event
from gm_agent.llm import ToolSpec
from tests.conftest import gm


def write_script(path: Path, moves: list[dict[str, object]]) -> Path:
    """Write a scripted model file (see gm_agent.llm.scripted) and return its path."""
    path.write_text(yaml.safe_dump(moves, sort_keys=False), encoding="utf-8")
    return path


def write_task(path: Path, body: str, **front: object) -> Path:
    """Write a task.md with the given front matter keys."""
    text = body
    if front:
        text = f"---\n{yaml.safe_dump(front, sort_keys=False)}---\n{body}"
    path.write_text(text, encoding="utf-8")
    return path


def events_of(
    clock: FakeClock, run_id: str, *datas: AnyEventData, first_seq: int = 1
) -> list[Event]:
    """Committed-looking events (with seqs) for fold tests."""
    return [
        new_event(clock, run_id, "kernel", data).model_copy(update={"seq": first_seq + i})
        for i, data in enumerate(datas)
    ]


CASSETTES = (
    Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "llm" / "pydantic-ai-cassettes"
)
"""Real recorded provider traffic (../shared/fixtures/README.md)."""


def interactions(name: str) -> list[dict[str, Any]]:
    """The recorded request/response pairs of cassette ``name``."""
    return yaml.safe_load((CASSETTES / name).read_text())["interactions"]


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` over real HTTP on 127.0.0.1; yields ``http://127.0.0.1:PORT``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def recorded_response(interaction: dict[str, Any]) -> httpx.Response:
    """The recorded response of a cassette ``interaction``: its JSON body, or its SSE stream."""
    response = interaction["response"]
    status = response["status"]["code"]
    if "parsed_body" in response:
        return httpx.Response(status, json=response["parsed_body"])
    return httpx.Response(
        status, headers={"content-type": "text/event-stream"}, content=response["body"]["string"]
    )


def replay(recorded: list[dict[str, Any]], seen: list[httpx.Request]) -> httpx.MockTransport:
    """A transport answering each request with the next recorded response; ``seen``
    collects the requests sent."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return recorded_response(recorded[len(seen) - 1])

    return httpx.MockTransport(handler)


def bodies(requests: list[httpx.Request]) -> list[dict[str, Any]]:
    """The JSON bodies of ``requests``."""
    return [json.loads(r.content) for r in requests]


class JsonProvider(BaseHTTPRequestHandler):
    """A fake provider over real HTTP: each POST's JSON body goes to :meth:`answer`,
    whose ``(status, body, headers)`` is sent back as JSON. Serve it with :func:`serving`."""

    def answer(self, sent: dict[str, Any]) -> tuple[int, object, dict[str, str]]:
        raise NotImplementedError

    def do_POST(self) -> None:
        sent = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status, body, headers = self.answer(sent)
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        del format, args


WEATHER = ToolSpec(
    name="get_weather",
    description="Get the current weather for a city.",
    parameters={
        "additionalProperties": False,
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "type": "object",
    },
)
"""The tool of the recorded cassettes' tool-calling conversations."""


# -- what the real `gm` reports (for tests that drive it in subprocesses) ------


def ledger(workspace: Path) -> list[str]:
    """The words the steps appended to ``ledger``, in order."""
    path = workspace / "ledger"
    return path.read_text(encoding="utf-8").split() if path.exists() else []


def runs(workspace: Path) -> list[dict[str, Any]]:
    """`gm runs --json`: every run, newest first."""
    listed = gm("runs", "--json", cwd=workspace)
    return [json.loads(line) for line in listed.stdout.splitlines()]


def events(workspace: Path, run_id: str) -> list[dict[str, Any]]:
    """`gm log --json RUN`: the run's events as dicts."""
    logged = gm("log", "--json", run_id, cwd=workspace)
    return [json.loads(line) for line in logged.stdout.splitlines()]


def kinds(workspace: Path, run_id: str) -> list[str]:
    """The kinds of the run's events, in order."""
    return [event["kind"] for event in events(workspace, run_id)]


def of_kind(workspace: Path, run_id: str, kind: str) -> list[dict[str, Any]]:
    """The ``data`` of the run's events of ``kind``."""
    return [e["data"] for e in events(workspace, run_id) if e["kind"] == kind]


def stopped(process: subprocess.Popen[str]) -> None:
    """Make sure ``process`` ended (killed if it still runs) and its pipes are closed."""
    process.kill()
    process.communicate(timeout=60)


def await_condition(
    what: str, holds: Callable[[], bool], process: subprocess.Popen[str] | None = None
) -> None:
    """Wait until ``holds()`` (polled every 50 ms, for at most a minute); fail
    naming ``what``, or with ``process``'s output when it ended first."""
    deadline = time.monotonic() + 60
    while not holds():
        assert time.monotonic() < deadline, f"{what} never happened"
        if process is not None and process.poll() is not None:
            raise AssertionError(f"gm ended before {what}: {process.communicate()}")
        time.sleep(0.05)
