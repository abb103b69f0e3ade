"""A run's state as a pure fold of its events.

``state = evolve(evolve(RunState(), e1), e2) ...``. :func:`evolve` does no I/O,
reads no clock and calls no model, so replaying the same events always gives
the same state and the same :meth:`RunState.state_hash`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Literal, assert_never

from pydantic import BaseModel, ConfigDict

from gm_agent.errors import IllegalTransition
from gm_agent.events import (
    Event,
    JobIntent,
    JobResult,
    ModelResponse,
    PatchApplied,
    RunCreated,
    RunFinished,
    RunStatus,
    RunStatusChanged,
    TokenUsage,
    ToolCallData,
    ToolCalled,
    ToolReturned,
    UserMessage,
)

__all__ = ["TERMINAL", "TRANSITIONS", "RunState", "Turn", "check_transition", "evolve", "fold"]

TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    "created": frozenset({"running", "failed", "cancelled"}),
    "running": frozenset({"waiting", "paused", "succeeded", "failed", "cancelled"}),
    "waiting": frozenset({"running", "paused", "failed", "cancelled"}),
    "paused": frozenset({"running", "failed", "cancelled"}),
    "succeeded": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}
"""The legal status moves (ARCHITECTURE.md, "Run states"). Terminal statuses have none."""

TERMINAL: frozenset[RunStatus] = frozenset({"succeeded", "failed", "cancelled"})


def check_transition(current: RunStatus, new: RunStatus) -> None:
    """Raise :class:`IllegalTransition` unless ``current -> new`` is in :data:`TRANSITIONS`."""
    if new not in TRANSITIONS[current]:
        raise IllegalTransition(f"a run cannot go from {current!r} to {new!r}")


class Turn(BaseModel):
    """One entry of the conversation the model sees."""

    model_config = ConfigDict(frozen=True)

    role: Literal["user", "assistant", "tool"]
    text: str = ""
    tool_calls: tuple[ToolCallData, ...] = ()
    call_id: str | None = None
    name: str | None = None
    ok: bool = True


class RunState(BaseModel):
    """Everything the kernel knows about a run, derived from its events only.

    Attributes:
        step: model responses so far (each is one step).
        conversation: what the model will see, in order.
        open_calls: tool calls announced (``tool.called``) but not yet returned.
        open_jobs: jobs with an intent and no result yet.
        changed_files: workspace paths changed by patches, in first-change order.
        last_seq: the seq of the last event folded in.
    """

    model_config = ConfigDict(frozen=True)

    run_id: str = ""
    status: RunStatus = "created"
    task: str = ""
    model: str = ""
    max_steps: int = 0
    tools: tuple[str, ...] | None = None
    instructions: str | None = None
    workspace: str = ""
    step: int = 0
    conversation: tuple[Turn, ...] = ()
    open_calls: tuple[str, ...] = ()
    open_jobs: tuple[str, ...] = ()
    changed_files: tuple[str, ...] = ()
    usage: TokenUsage = TokenUsage()
    summary: str | None = None
    error: str | None = None
    last_seq: int = 0

    def canonical_json(self) -> str:
        """The state as canonical JSON: sorted keys, no spaces, UTF-8 as is."""
        return json.dumps(
            self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )

    def state_hash(self) -> str:
        """Hex sha256 of :meth:`canonical_json`."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


def _without(items: tuple[str, ...], item: str) -> tuple[str, ...]:
    return tuple(i for i in items if i != item)


def evolve(state: RunState, event: Event) -> RunState:
    """The state after ``event``. Pure.

    Raises:
        IllegalTransition: the event moves the run's status illegally.
    """
    data = event.data
    update: dict[str, object] = {"last_seq": event.seq if event.seq is not None else state.last_seq}
    match data:
        case RunCreated():
            update.update(
                run_id=event.run_id,
                status="created",
                task=data.task,
                model=data.model,
                max_steps=data.max_steps,
                tools=data.tools,
                instructions=data.instructions,
                workspace=data.workspace,
            )
        case RunStatusChanged():
            if data.from_ != state.status:
                raise IllegalTransition(
                    f"event seq {event.seq} moves the run from {data.from_!r}, but it is {state.status!r}"
                )
            check_transition(state.status, data.to)
            update["status"] = data.to
        case UserMessage():
            update["conversation"] = (*state.conversation, Turn(role="user", text=data.text))
        case ModelResponse():
            turn = Turn(role="assistant", text=data.text, tool_calls=data.tool_calls)
            update.update(
                step=state.step + 1,
                conversation=(*state.conversation, turn),
                usage=TokenUsage(
                    input_tokens=state.usage.input_tokens + data.usage.input_tokens,
                    output_tokens=state.usage.output_tokens + data.usage.output_tokens,
                ),
            )
        case ToolCalled():
            update["open_calls"] = (*state.open_calls, data.call_id)
        case ToolReturned():
            turn = Turn(
                role="tool", text=data.output, call_id=data.call_id, name=data.name, ok=data.ok
            )
            update.update(
                open_calls=_without(state.open_calls, data.call_id),
                conversation=(*state.conversation, turn),
            )
        case JobIntent():
            update["open_jobs"] = (*state.open_jobs, data.job_id)
        case JobResult():
            update["open_jobs"] = _without(state.open_jobs, data.job_id)
        case PatchApplied():
            new = [f.path for f in data.files if f.path not in state.changed_files]
            update["changed_files"] = (*state.changed_files, *dict.fromkeys(new))
        case RunFinished():
            if state.status != data.status:
                raise IllegalTransition(
                    f"event seq {event.seq} finishes the run as {data.status!r}, but it is {state.status!r}"
                )
            update.update(summary=data.summary, error=data.error)
        case _:
            assert_never(data)
    return state.model_copy(update=update)


def fold(events: Iterable[Event], state: RunState | None = None) -> RunState:
    """Fold ``events`` into ``state`` (a fresh :class:`RunState` by default)."""
    current = state or RunState()
    for event in events:
        current = evolve(current, event)
    return current
