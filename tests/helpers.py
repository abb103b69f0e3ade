"""Small builders that keep tests readable."""

from __future__ import annotations

from pathlib import Path

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
