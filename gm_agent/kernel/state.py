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

from pydantic import BaseModel, ConfigDict, JsonValue

from gm_agent.errors import IllegalTransition
from gm_agent.events import (
    Event,
    FileChange,
    JobAmbiguous,
    JobAttemptFailed,
    JobCancelled,
    JobIntent,
    JobResult,
    ModelResponse,
    PatchApplied,
    PatchConflict,
    PatchIntent,
    PatchReapplied,
    PatchReverted,
    RunCreated,
    RunFinished,
    RunResumed,
    RunStatus,
    RunStatusChanged,
    TokenUsage,
    ToolCallData,
    ToolCalled,
    ToolReturned,
    UserMessage,
)

__all__ = [
    "TERMINAL",
    "TRANSITIONS",
    "JobView",
    "PatchView",
    "RunState",
    "Turn",
    "check_transition",
    "evolve",
    "fold",
]

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


JobStatus = Literal["started", "succeeded", "failed", "ambiguous", "cancelled"]


class JobView(BaseModel):
    """A job as the run knows it: its intent, and its result once there is one."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    key: str
    job_kind: str
    idempotent: bool
    call_id: str | None
    args: dict[str, JsonValue]
    before_snapshot: str | None = None
    status: JobStatus = "started"
    result: JobResult | None = None


PatchStatus = Literal["intent", "applied", "conflict", "reverted"]


class PatchView(BaseModel):
    """A patch of the run: announced (``intent``), ``applied``, refused (``conflict``),
    or undone (``reverted``, by ``gm undo``; ``gm redo`` makes it ``applied`` again).

    ``applied_seq`` is where it was first applied (what ``gm undo --to`` compares);
    ``seq`` where it was last applied or reverted; ``undo_id`` the undo that
    reverted it.
    """

    model_config = ConfigDict(frozen=True)

    patch_id: str
    call_id: str | None
    files: tuple[FileChange, ...]
    status: PatchStatus = "intent"
    applied_seq: int = 0
    seq: int = 0
    undo_id: str | None = None


class RunState(BaseModel):
    """Everything the kernel knows about a run, derived from its events only.

    Attributes:
        step: model responses so far (each is one step).
        conversation: what the model will see, in order.
        open_calls: tool calls announced (``tool.called``) but not yet returned.
        jobs: every job of the run, in intent order.
        patches: every patch of the run, in intent order.
        changed_files: workspace paths changed by applied patches, first change first.
        last_response_id: the event id of the latest ``model.response``.
        resumes: how many times a process took the run over after a stop.
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
    jobs: tuple[JobView, ...] = ()
    patches: tuple[PatchView, ...] = ()
    changed_files: tuple[str, ...] = ()
    usage: TokenUsage = TokenUsage()
    summary: str | None = None
    error: str | None = None
    last_response_id: str | None = None
    resumes: int = 0
    last_seq: int = 0

    def open_jobs(self) -> list[JobView]:
        """Jobs with an intent and no outcome yet (in flight, or cut off by a crash)."""
        return [job for job in self.jobs if job.status == "started"]

    def job_for_call(self, call_id: str) -> JobView | None:
        """The (last) job that carries out tool call ``call_id``, if any."""
        found = [job for job in self.jobs if job.call_id == call_id]
        return found[-1] if found else None

    def patch_for_call(self, call_id: str) -> PatchView | None:
        """The (last) patch of tool call ``call_id``, if any."""
        found = [patch for patch in self.patches if patch.call_id == call_id]
        return found[-1] if found else None

    def pending_calls(self) -> list[tuple[int, ToolCallData]]:
        """Tool calls of the latest move with no ``tool.returned`` yet, as (1-based index, call)."""
        for position in range(len(self.conversation) - 1, -1, -1):
            turn = self.conversation[position]
            if turn.role == "assistant":
                after = self.conversation[position + 1 :]
                returned = {t.call_id for t in after if t.role == "tool"}
                return [
                    (index, call)
                    for index, call in enumerate(turn.tool_calls, start=1)
                    if call.call_id not in returned
                ]
        return []

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


def _put_patch(state: RunState, patch: PatchView) -> tuple[PatchView, ...]:
    if any(p.patch_id == patch.patch_id for p in state.patches):
        return tuple(patch if p.patch_id == patch.patch_id else p for p in state.patches)
    return (*state.patches, patch)


def _update_patch(state: RunState, patch_id: str, **changes: object) -> tuple[PatchView, ...]:
    return tuple(
        p.model_copy(update=changes) if p.patch_id == patch_id else p for p in state.patches
    )


def _update_job(state: RunState, job_id: str, **changes: object) -> tuple[JobView, ...]:
    return tuple(
        job.model_copy(update=changes) if job.job_id == job_id else job for job in state.jobs
    )


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
                last_response_id=event.id,
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
            job = JobView(
                job_id=data.job_id,
                key=data.key,
                job_kind=data.job_kind,
                idempotent=data.idempotent,
                call_id=data.call_id,
                args=data.args,
                before_snapshot=data.before_snapshot,
            )
            update["jobs"] = (*state.jobs, job)
        case JobResult():
            status = "succeeded" if data.ok else "failed"
            update["jobs"] = _update_job(state, data.job_id, status=status, result=data)
        case JobAmbiguous():
            update["jobs"] = _update_job(state, data.job_id, status="ambiguous")
        case JobCancelled():
            update["jobs"] = _update_job(state, data.job_id, status="cancelled")
        case JobAttemptFailed():
            pass
        case PatchIntent():
            patch = PatchView(patch_id=data.patch_id, call_id=data.call_id, files=data.files)
            update["patches"] = (*state.patches, patch)
        case PatchApplied():
            applied = PatchView(
                patch_id=data.patch_id,
                call_id=data.call_id,
                files=data.files,
                status="applied",
                applied_seq=event.seq or 0,
                seq=event.seq or 0,
            )
            update["patches"] = _put_patch(state, applied)
            new = [f.path for f in data.files if f.path not in state.changed_files]
            update["changed_files"] = (*state.changed_files, *dict.fromkeys(new))
        case PatchConflict():
            conflict = PatchView(
                patch_id=data.patch_id, call_id=data.call_id, files=(), status="conflict"
            )
            update["patches"] = _put_patch(state, conflict)
        case PatchReverted():
            update["patches"] = _update_patch(
                state, data.patch_id, status="reverted", seq=event.seq or 0, undo_id=data.undo_id
            )
        case PatchReapplied():
            update["patches"] = _update_patch(
                state, data.patch_id, status="applied", seq=event.seq or 0, undo_id=None
            )
        case RunResumed():
            update["resumes"] = state.resumes + 1
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
