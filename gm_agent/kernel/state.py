"""A run's state as a pure fold of its events.

``state = evolve(evolve(RunState(), e1), e2) ...``. :func:`evolve` does no I/O,
reads no clock and calls no model, so replaying the same events always gives
the same state and the same :meth:`RunState.state_hash`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, Literal, assert_never

from pydantic import BaseModel, ConfigDict, JsonValue

from gm_agent._bulk import cycle_collection_paused
from gm_agent.errors import IllegalTransition
from gm_agent.events import (
    AgentsJoined,
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    BudgetRaised,
    CheckpointSaved,
    ContextCompacted,
    ContextLoaded,
    Event,
    FileChange,
    JobAmbiguous,
    JobAttemptFailed,
    JobCancelled,
    JobIntent,
    JobResult,
    ModelFallback,
    ModelResponse,
    PatchApplied,
    PatchConflict,
    PatchIntent,
    PatchReapplied,
    PatchReverted,
    RunCancel,
    RunCreated,
    RunFinished,
    RunForked,
    RunInterrupt,
    RunResumed,
    RunStatus,
    RunStatusChanged,
    SandboxProbed,
    ScheduleArmed,
    SchemeStepSkipped,
    TokenUsage,
    ToolCallData,
    ToolCalled,
    ToolReturned,
    TriggerFired,
    UserMessage,
    WebhookRejected,
)

__all__ = [
    "TERMINAL",
    "TRANSITIONS",
    "ApprovalView",
    "Folder",
    "JobView",
    "PatchView",
    "RunState",
    "Turn",
    "check_moves",
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
    malformed: bool = False
    provider_data: dict[str, JsonValue] | None = None


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


class ApprovalView(BaseModel):
    """A call that asked for approval, and its answer once there is one."""

    model_config = ConfigDict(frozen=True)

    call_id: str
    name: str
    args: dict[str, JsonValue]
    risk: str
    rule: str
    reason: str
    answer: Literal["granted", "denied"] | None = None
    answer_reason: str | None = None


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
        usage: tokens over all model responses; ``cost_usd`` their cost in US
            dollars, over the ``step - unpriced_steps`` responses that had a price.
        resumes: how many times a process took the run over after a stop.
        sandbox: how shell commands are confined now (``bubblewrap``, ``landlock``
            or ``none``).
        network: the task lets its shell commands reach the network.
        fallbacks: models to move to, in order, when the current one's provider fails.
        budget: limits besides ``max_steps`` (see ``BudgetSettings``); ``created_at``
            when the run was created (RFC 3339); ``waiting_reason`` why it waits.
        approvals: calls that asked for approval, oldest first, with their answers.
        approved_rules: rule keys approved ``--always`` for this run.
        project_context: the project context files' section of the system prompt,
            as journaled by ``context.loaded``; ``context_files`` their paths.
        truncated_before, dropped_before: how the conversation is compacted for
            the model (see ``context.compacted``); 0 while it is sent whole.
        inbox: user messages that arrived during a step, delivered (appended to the
            conversation) when the step ends; ``preempt`` when one of them cuts in.
        interrupt_requested, cancel_requested: a ``run.interrupt`` or
            ``run.cancel`` the kernel has not acted on yet.
        parent_id: the run this one was forked from, if it is a fork.
        fork_seq: the parent's last event this fork's history includes.
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
    project_context: str | None = None
    context_files: tuple[str, ...] = ()
    truncated_before: int = 0
    dropped_before: int = 0
    inbox: tuple[Turn, ...] = ()
    preempt: bool = False
    interrupt_requested: bool = False
    cancel_requested: bool = False
    cancel_reason: str | None = None
    rules: tuple[dict[str, JsonValue], ...] = ()
    budget: dict[str, JsonValue] = {}
    network: bool = False
    fallbacks: tuple[str, ...] = ()
    created_at: str = ""
    waiting_reason: str | None = None
    workspace: str = ""
    step: int = 0
    conversation: tuple[Turn, ...] = ()
    open_calls: tuple[str, ...] = ()
    jobs: tuple[JobView, ...] = ()
    patches: tuple[PatchView, ...] = ()
    changed_files: tuple[str, ...] = ()
    usage: TokenUsage = TokenUsage()
    cost_usd: float = 0.0
    unpriced_steps: int = 0
    summary: str | None = None
    error: str | None = None
    last_response_id: str | None = None
    resumes: int = 0
    sandbox: str | None = None
    approvals: tuple[ApprovalView, ...] = ()
    approved_rules: tuple[str, ...] = ()
    parent_id: str | None = None
    fork_seq: int | None = None
    last_seq: int = 0

    def at_rest(self) -> bool:
        """At a safe point: no tool call announced without its result, no job without
        an outcome, no patch announced but not applied (ARCHITECTURE.md, "safe point")."""
        return not (
            self.open_calls or self.open_jobs() or any(p.status == "intent" for p in self.patches)
        )

    def approval_for(self, call_id: str) -> ApprovalView | None:
        """The (last) approval asked for call ``call_id``, if any."""
        found = [a for a in self.approvals if a.call_id == call_id]
        return found[-1] if found else None

    def pending_approval(self) -> ApprovalView | None:
        """The approval the run waits for: asked, not answered yet."""
        waiting = [a for a in self.approvals if a.answer is None]
        return waiting[-1] if waiting else None

    def open_jobs(self) -> list[JobView]:
        """Jobs with an intent and no outcome yet (in flight, or cut off by a crash)."""
        return [job for job in self.jobs if job.status == "started"]

    def spawned(self) -> list[JobView]:
        """The jobs of ``spawn_agent`` calls (kind ``agent``, with a ``group``), oldest
        first: one per child run, named in ``args["child_run"]``."""
        return [j for j in self.jobs if j.job_kind == "agent" and "group" in j.args]

    @property
    def given_steps(self) -> int:
        """Steps given to child runs (``spawn_agent``'s ``max_steps``), taken from
        this run's own ``max_steps``."""
        return sum(int(str(j.args.get("max_steps", 0))) for j in self.spawned())

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


def _moved(status: RunStatus, event: Event) -> RunStatus:
    """The run's status after ``event``, from ``status``.

    Raises:
        IllegalTransition: the event moves the status illegally (the only way an
            event can be illegal).
    """
    data = event.data
    match data:
        case RunCreated() | RunForked():
            return "created"
        case RunStatusChanged():
            if data.from_ != status:
                raise IllegalTransition(
                    f"event seq {event.seq} moves the run from {data.from_!r}, but it is {status!r}"
                )
            check_transition(data.from_, data.to)
            return data.to
        case RunFinished():
            if status != data.status:
                raise IllegalTransition(
                    f"event seq {event.seq} finishes the run as {data.status!r}, "
                    f"but it is {status!r}"
                )
            return status
        case _:
            return status


def check_moves(status: RunStatus, events: Iterable[Event]) -> RunStatus:
    """The status a run in ``status`` has after ``events``, raising where :func:`evolve`
    would: the check before a commit, in time linear in ``events`` alone.

    Only a status move can make an event illegal, so this accepts exactly the
    event lists that :func:`fold` accepts from a state with this status.

    Raises:
        IllegalTransition: an event moves the run's status illegally.
    """
    for event in events:
        status = _moved(status, event)
    return status


class _Draft:
    """A mutable working copy of a :class:`RunState`, so a fold is linear in its events.

    :func:`evolve` and :func:`fold` share this one implementation of the rules:
    ``evolve`` drafts one event, ``fold`` drafts them all and freezes once.
    """

    def __init__(self, state: RunState) -> None:
        self.base = state
        self.scalars: dict[str, object] = {}
        self.status: RunStatus = state.status
        self.step = state.step
        self.usage = state.usage
        self.resumes = state.resumes
        self.conversation = list(state.conversation)
        self.inbox = list(state.inbox)
        self.open_calls = list(state.open_calls)
        self.jobs = list(state.jobs)
        self.patches = list(state.patches)
        self.changed_files = dict.fromkeys(state.changed_files)
        self.job_at = {job.job_id: i for i, job in enumerate(self.jobs)}
        self.patch_at = {patch.patch_id: i for i, patch in enumerate(self.patches)}
        self.approvals = list(state.approvals)
        self.open_job_ids = {job.job_id for job in state.open_jobs()}
        # Positions in `jobs` of the views whose status is "started", in order.
        self.started = {i: None for i, job in enumerate(self.jobs) if job.status == "started"}
        self.intent_ids = {p.patch_id for p in state.patches if p.status == "intent"}

    def freeze(self) -> RunState:
        # Every value comes from a validated state or event: no need to validate again.
        values: dict[str, Any] = {
            **self.base.__dict__,
            **self.scalars,
            "status": self.status,
            "step": self.step,
            "usage": self.usage,
            "resumes": self.resumes,
            "conversation": tuple(self.conversation),
            "inbox": tuple(self.inbox),
            "open_calls": tuple(self.open_calls),
            "jobs": tuple(self.jobs),
            "patches": tuple(self.patches),
            "changed_files": tuple(self.changed_files),
            "approvals": tuple(self.approvals),
        }
        return RunState.model_construct(**values)

    def mid_step(self) -> bool:
        """A step is under way: a model request in flight, or tool calls of the
        latest move without their results."""
        if any(self.jobs[self.job_at[j]].job_kind == "model" for j in self.open_job_ids):
            return True
        returned: set[str] = set()
        for turn in reversed(self.conversation):
            if turn.role == "tool" and turn.call_id is not None:
                returned.add(turn.call_id)
            elif turn.role == "assistant":
                return any(c.call_id not in returned for c in turn.tool_calls)
        return False

    def deliver(self) -> None:
        """Move the inbox into the conversation once no step is under way."""
        if self.inbox and not self.mid_step():
            self.conversation.extend(self.inbox)
            self.inbox.clear()
            self.scalars["preempt"] = False

    def answer(self, data: ApprovalGranted | ApprovalDenied) -> None:
        for at in range(len(self.approvals) - 1, -1, -1):
            approval = self.approvals[at]
            if approval.call_id == data.call_id and approval.answer is None:
                if isinstance(data, ApprovalGranted):
                    self.approvals[at] = approval.model_copy(update={"answer": "granted"})
                    if data.always == "run":
                        rules = self.base.approved_rules
                        kept = self.scalars.get("approved_rules", rules)
                        assert isinstance(kept, tuple)
                        self.scalars["approved_rules"] = (*kept, approval.rule)
                else:
                    update = {"answer": "denied", "answer_reason": data.reason}
                    self.approvals[at] = approval.model_copy(update=update)
                return

    def update_job(self, job_id: str, **changes: object) -> None:
        at = self.job_at.get(job_id)
        if at is not None:
            self.jobs[at] = self.jobs[at].model_copy(update=changes)
            if self.jobs[at].status != "started":
                self.started.pop(at, None)

    def put_patch(self, patch: PatchView) -> None:
        at = self.patch_at.get(patch.patch_id)
        if at is None:
            self.patch_at[patch.patch_id] = len(self.patches)
            self.patches.append(patch)
        else:
            self.patches[at] = patch

    def update_patch(self, patch_id: str, **changes: object) -> None:
        at = self.patch_at.get(patch_id)
        if at is not None:
            self.patches[at] = self.patches[at].model_copy(update=changes)

    def apply(self, event: Event) -> None:
        """Apply ``event``; raise :class:`IllegalTransition` on an illegal status move
        (before anything changes, so a refused event leaves the draft as it was)."""
        status = _moved(self.status, event)
        data = event.data
        if event.seq is not None:  # events of other processes may be folded late: keep the max
            last = self.scalars.get("last_seq", self.base.last_seq)
            assert isinstance(last, int)
            self.scalars["last_seq"] = max(last, event.seq)
        match data:
            case RunCreated():
                self.status = status
                self.scalars.update(
                    run_id=event.run_id,
                    task=data.task,
                    model=data.model,
                    max_steps=data.max_steps,
                    tools=data.tools,
                    instructions=data.instructions,
                    rules=data.rules,
                    budget=data.budget,
                    network=data.network,
                    fallbacks=data.fallbacks,
                    created_at=event.at,
                    workspace=data.workspace,
                )
            case RunStatusChanged():
                self.status = status
                self.scalars["waiting_reason"] = data.reason if data.to == "waiting" else None
                if data.to == "paused" or data.to in TERMINAL:
                    self.scalars["interrupt_requested"] = False
            case UserMessage():
                turn = Turn(role="user", text=data.text)
                if self.mid_step():
                    self.inbox.append(turn)
                    if data.preempt:
                        self.scalars["preempt"] = True
                else:
                    self.conversation.append(turn)
            case RunInterrupt():
                self.scalars["interrupt_requested"] = True
            case RunCancel():
                self.scalars.update(cancel_requested=True, cancel_reason=data.reason)
            case ModelResponse():
                turn = Turn(
                    role="assistant",
                    text=data.text,
                    tool_calls=data.tool_calls,
                    provider_data=data.provider_data,
                )
                self.conversation.append(turn)
                self.step += 1
                self.scalars["last_response_id"] = event.id
                self.usage = self.usage + data.usage
                if data.cost_usd is None:
                    unpriced = self.scalars.get("unpriced_steps", self.base.unpriced_steps)
                    assert isinstance(unpriced, int)
                    self.scalars["unpriced_steps"] = unpriced + 1
                else:
                    cost = self.scalars.get("cost_usd", self.base.cost_usd)
                    assert isinstance(cost, float | int)
                    self.scalars["cost_usd"] = cost + data.cost_usd
            case ToolCalled():
                self.open_calls.append(data.call_id)
            case ToolReturned():
                if data.call_id in self.open_calls:
                    self.open_calls.remove(data.call_id)
                self.conversation.append(
                    Turn(
                        role="tool",
                        text=data.output,
                        call_id=data.call_id,
                        name=data.name,
                        ok=data.ok,
                        malformed=data.malformed,
                    )
                )
            case JobIntent():
                self.open_job_ids.add(data.job_id)
                self.job_at[data.job_id] = len(self.jobs)
                self.started[len(self.jobs)] = None
                self.jobs.append(
                    JobView(
                        job_id=data.job_id,
                        key=data.key,
                        job_kind=data.job_kind,
                        idempotent=data.idempotent,
                        call_id=data.call_id,
                        args=data.args,
                        before_snapshot=data.before_snapshot,
                    )
                )
            case JobResult():
                self.open_job_ids.discard(data.job_id)
                status = "succeeded" if data.ok else "failed"
                self.update_job(data.job_id, status=status, result=data)
            case JobAmbiguous():
                self.open_job_ids.discard(data.job_id)
                self.update_job(data.job_id, status="ambiguous")
            case JobCancelled():
                self.open_job_ids.discard(data.job_id)
                self.update_job(data.job_id, status="cancelled")
            case JobAttemptFailed():
                pass
            case PatchIntent():
                self.intent_ids.add(data.patch_id)
                self.put_patch(
                    PatchView(patch_id=data.patch_id, call_id=data.call_id, files=data.files)
                )
            case PatchApplied():
                self.intent_ids.discard(data.patch_id)
                seq = event.seq or 0
                self.put_patch(
                    PatchView(
                        patch_id=data.patch_id,
                        call_id=data.call_id,
                        files=data.files,
                        status="applied",
                        applied_seq=seq,
                        seq=seq,
                    )
                )
                for change in data.files:
                    self.changed_files.setdefault(change.path)
            case PatchConflict():
                self.intent_ids.discard(data.patch_id)
                self.put_patch(
                    PatchView(
                        patch_id=data.patch_id, call_id=data.call_id, files=(), status="conflict"
                    )
                )
            case PatchReverted():
                self.update_patch(
                    data.patch_id, status="reverted", seq=event.seq or 0, undo_id=data.undo_id
                )
            case PatchReapplied():
                self.update_patch(data.patch_id, status="applied", seq=event.seq or 0, undo_id=None)
            case RunResumed():
                self.resumes += 1
                self.scalars["interrupt_requested"] = False  # taken over: go on
            case RunForked():  # the parent's history so far is folded in already
                self.status = status
                self.resumes = 0
                self.open_calls.clear()
                self.jobs.clear()
                self.patches.clear()
                self.changed_files.clear()
                self.job_at.clear()
                self.patch_at.clear()
                self.open_job_ids.clear()
                self.started.clear()
                self.intent_ids.clear()
                self.scalars.update(
                    run_id=event.run_id,
                    model=data.model,
                    max_steps=data.max_steps,
                    parent_id=data.parent_id,
                    fork_seq=data.fork_seq,
                    summary=None,
                    error=None,
                    interrupt_requested=False,
                    cancel_requested=False,
                )
                self.deliver()
            case ApprovalRequested():
                self.approvals.append(
                    ApprovalView(
                        call_id=data.call_id,
                        name=data.name,
                        args=data.args,
                        risk=data.risk,
                        rule=data.rule,
                        reason=data.reason,
                    )
                )
            case ApprovalGranted() | ApprovalDenied():
                self.answer(data)
            case BudgetRaised():
                if data.max_steps is not None:
                    self.scalars["max_steps"] = data.max_steps
                budget = self.scalars.get("budget", self.base.budget)
                assert isinstance(budget, dict)
                self.scalars["budget"] = {**budget, **data.budget}
            case TriggerFired() | ScheduleArmed() | WebhookRejected():
                pass  # in a trigger's stream, not a run's
            case SchemeStepSkipped():
                pass  # a scheme's own record (gm_agent.kernel._scheme_record)
            case AgentsJoined():
                pass  # a join's record; its call's tool.returned is what the model sees
            case ModelFallback():
                self.scalars["model"] = data.to_model
            case ContextLoaded():
                self.scalars.update(
                    project_context=data.text or None,
                    context_files=tuple(f.path for f in data.files),
                )
            case ContextCompacted():
                for name in ("truncated_before", "dropped_before"):
                    mark = self.scalars.get(name, getattr(self.base, name))
                    assert isinstance(mark, int)
                    self.scalars[name] = max(mark, getattr(data, name))
            case CheckpointSaved():
                pass
            case SandboxProbed():
                self.scalars["sandbox"] = data.backend
            case RunFinished():
                self.scalars.update(summary=data.summary, error=data.error)
            case _:
                assert_never(data)
        if isinstance(data, ModelResponse | ToolReturned | JobResult | JobAmbiguous | JobCancelled):
            self.deliver()  # the step may have just ended


def evolve(state: RunState, event: Event) -> RunState:
    """The state after ``event``. Pure: no I/O, no clock, no model.

    Raises:
        IllegalTransition: the event moves the run's status illegally.
    """
    draft = _Draft(state)
    draft.apply(event)
    return draft.freeze()


def fold(events: Iterable[Event], state: RunState | None = None) -> RunState:
    """Fold ``events`` into ``state`` (a fresh :class:`RunState` by default).

    Equal to applying :func:`evolve` event by event, in time linear in the events.

    Raises:
        IllegalTransition: an event moves the run's status illegally.
    """
    folder = Folder(state)
    with cycle_collection_paused():  # see gm_agent._bulk
        for event in events:
            folder.add(event)
        return folder.state


class Folder:
    """A fold in progress, for code that looks at the state between events (replay)
    and for the kernel, which folds each event it commits into its run's state.

    :meth:`add` costs what one event costs, however long the run: the draft's
    lists and indexes are kept, not rebuilt. :attr:`state` copies the state out
    (linear in its size, though only references are copied) and keeps the copy
    until the next :meth:`add`. :attr:`status` and :meth:`at_rest` are cheap.
    """

    def __init__(self, state: RunState | None = None) -> None:
        self._draft = _Draft(state or RunState())
        self._frozen: RunState | None = None

    def add(self, event: Event) -> None:
        """Fold ``event`` in. Raises :class:`IllegalTransition` like :func:`evolve`,
        before anything changes."""
        self._draft.apply(event)
        self._frozen = None

    @property
    def state(self) -> RunState:
        """The state so far."""
        if self._frozen is None:
            self._frozen = self._draft.freeze()
        return self._frozen

    @property
    def status(self) -> RunStatus:
        """The run's status so far."""
        return self._draft.status

    def at_rest(self) -> bool:
        """:meth:`RunState.at_rest`, without copying the state."""
        draft = self._draft
        return not (draft.open_calls or draft.open_job_ids or draft.intent_ids)

    def open_jobs(self) -> list[JobView]:
        """:meth:`RunState.open_jobs`, in time linear in the open jobs alone."""
        draft = self._draft
        return [draft.jobs[at] for at in draft.started]
