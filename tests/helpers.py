"""Small builders that keep tests readable."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from gm_agent.clock import FakeClock
from gm_agent.events import AnyEventData, Event, new_event


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
