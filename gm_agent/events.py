"""Journal events: frozen, discriminated by ``kind``, versioned by ``v``.

An :class:`Event` is one immutable journal row::

    seq, id, run_id, kind, v, at, source, causation_id, data

``data`` is one of the payload models below, chosen by its ``kind`` (a
``noun.verb`` name). ``seq`` is assigned by the journal when the event is
committed; an event not yet appended has ``seq=None``. Parse any row with
:func:`event_from_record`; render one with :meth:`Event.to_record` (the shape
``gm log --json`` prints, one JSON object per line).

Adding a field with a default keeps ``v``; changing a field's meaning bumps
``v`` and the parser must keep reading the old version.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter

from gm_agent.clock import Clock, format_timestamp

__all__ = [
    "JOB_OUTPUT_CAP_BYTES",
    "AgentsJoined",
    "AnyEventData",
    "ApprovalDenied",
    "ApprovalGranted",
    "ApprovalRequested",
    "BudgetRaised",
    "CheckpointSaved",
    "ChildOutcome",
    "ContextCompacted",
    "ContextFile",
    "ContextLoaded",
    "Event",
    "EventSource",
    "FileChange",
    "FileMismatch",
    "FileOp",
    "JobAmbiguous",
    "JobAttemptFailed",
    "JobCancelled",
    "JobIntent",
    "JobResult",
    "ModelFallback",
    "ModelResponse",
    "PatchApplied",
    "PatchConflict",
    "PatchIntent",
    "PatchReapplied",
    "PatchReverted",
    "RunCancel",
    "RunCreated",
    "RunFinished",
    "RunForked",
    "RunInterrupt",
    "RunResumed",
    "RunStatus",
    "RunStatusChanged",
    "SandboxProbed",
    "ScheduleArmed",
    "SchemeStepSkipped",
    "TerminalStatus",
    "TokenUsage",
    "ToolCallData",
    "ToolCalled",
    "ToolReturned",
    "TriggerFired",
    "TriggerKind",
    "UserMessage",
    "WebhookRejected",
    "event_from_record",
    "new_event",
]

EventSource = Literal["user", "file", "timer", "webhook", "kernel", "model", "job", "patch"]
"""Who caused an event (ARCHITECTURE.md, vocabulary)."""

RunStatus = Literal["created", "running", "waiting", "paused", "succeeded", "failed", "cancelled"]
"""A run's status; the legal moves between them are in :mod:`gm_agent.kernel`."""

TerminalStatus = Literal["succeeded", "failed", "cancelled"]

JOB_OUTPUT_CAP_BYTES = 4096
"""Most bytes of a job's output kept in its ``job.result`` event; the rest is in a blob."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class TokenUsage(_Frozen):
    """Tokens a model request consumed, as the provider reported them.

    ``input_tokens`` is every input token, cached or not; ``cache_read_tokens``
    and ``cache_write_tokens`` are the parts of it read from or written to the
    provider's prompt cache (billed at their own rates). ``reasoning_tokens`` is
    the part of ``output_tokens`` spent thinking. The convention of genai-prices
    (``Usage``), which prices them.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
        )


class ToolCallData(_Frozen):
    """One tool call inside a model's move.

    ``call_id`` is the provider's id when it gives one, else one gm_agent made.
    ``args`` are the parsed JSON arguments; ``args_error`` is set instead when
    the model sent arguments that are not a JSON object (the call then fails
    with that message, and the model sees it).
    """

    call_id: str
    name: str
    args: dict[str, JsonValue] = Field(default_factory=dict)
    args_error: str | None = None


FileOp = Literal["create", "modify", "delete", "rename", "chmod"]


class FileChange(_Frozen):
    """One file's change inside a patch. Hashes are hex sha256 of the full content.

    ``path`` is where the file is after the change (for a ``rename``, its new
    path; ``old_path`` is where it was). ``before_sha256`` is ``None`` for a
    create, ``after_sha256`` is ``None`` for a delete. ``mode`` is the permission
    bits after the change (``None`` for a delete), ``before_mode`` before it
    (``None`` for a create); ``size`` is the content's length after, in bytes.
    Both contents are stored as journal blobs, text and binary alike.
    """

    path: str
    op: FileOp
    before_sha256: str | None
    after_sha256: str | None
    mode: int | None = None
    size: int | None = None
    before_mode: int | None = None
    old_path: str | None = None


class FileMismatch(_Frozen):
    """A file that is not in the state a patch expects: hashes (``None``: missing) and modes."""

    path: str
    expected_sha256: str | None
    actual_sha256: str | None
    expected_mode: int | None = None
    actual_mode: int | None = None


class RunCreated(_Frozen):
    """A run was created from a task."""

    kind: Literal["run.created"] = "run.created"
    v: int = 1
    task: str
    task_path: str | None = None
    model: str
    max_steps: int
    tools: tuple[str, ...] | None = None
    instructions: str | None = None
    workspace: str
    rules: tuple[dict[str, JsonValue], ...] = ()
    """The task's policy rules (gm.toml's are read when the run executes)."""
    budget: dict[str, JsonValue] = Field(default_factory=dict)
    """Limits besides ``max_steps`` (gm.toml's ``[budget]`` under the task's ``budget:``)."""
    network: bool = False
    """The task lets its shell commands reach the network (``sandbox: {network: true}``)."""
    fallbacks: tuple[str, ...] = ()
    """Models to move to, in order, when ``model``'s provider fails (``models =``)."""
    trigger: str | None = None
    """The trigger that started the run (its ``trigger.fired`` holds the payload)."""
    scheme: dict[str, JsonValue] | None = None
    """A scheme run's procedure, frozen when the run was created so a resume runs
    exactly it: ``{name, path, sha256, text, params, subschemes}`` (see
    ``gm_agent.kernel.SchemeRecord``); ``None`` for a task run."""
    parent_run: str | None = None
    """The run that started this one: a run's ``spawn_agent`` call, or a scheme run's
    ``agent`` step or ``fallback``."""


class RunStatusChanged(_Frozen):
    """A run moved from one status to another (``from`` and ``to`` on the wire)."""

    kind: Literal["run.status_changed"] = "run.status_changed"
    v: int = 1
    from_: RunStatus = Field(alias="from")
    to: RunStatus
    reason: str | None = None

    @classmethod
    def between(
        cls, from_: RunStatus, to: RunStatus, reason: str | None = None
    ) -> RunStatusChanged:
        """The change ``from_ -> to`` (``from`` is a keyword, so this is the typed constructor)."""
        return cls.model_validate({"from": from_, "to": to, "reason": reason})


class UserMessage(_Frozen):
    """A message from the user to the run (the task itself is the first one).

    A message that arrives while a step is under way (the model thinking, tool
    calls running) waits for the step to end and is then delivered, in order.
    ``preempt`` makes it cut in at the next safe point: a model request in flight
    is stopped, the step's remaining tool calls are skipped, and the model sees
    the message next.
    """

    kind: Literal["user.message"] = "user.message"
    v: int = 1
    text: str
    preempt: bool = False


class RunInterrupt(_Frozen):
    """Someone asked the run to pause at its next safe point (``gm interrupt``).

    A model request in flight is stopped (it is asked again on resume); a running
    tool call is let finish. ``gm resume`` continues the run.
    """

    kind: Literal["run.interrupt"] = "run.interrupt"
    v: int = 1
    by: str = "user"
    reason: str | None = None


class RunCancel(_Frozen):
    """Someone cancelled the run (``gm cancel``): what is in flight is killed and
    recorded, and the run finishes as ``cancelled``."""

    kind: Literal["run.cancel"] = "run.cancel"
    v: int = 1
    by: str = "user"
    reason: str | None = None


class ModelResponse(_Frozen):
    """The model's move for one step: text and/or tool calls, and token usage.

    ``job_id`` names the model-request job this response is the result of.
    ``duration_ms`` is the request's wall time in milliseconds.
    """

    kind: Literal["model.response"] = "model.response"
    v: int = 1
    job_id: str
    model: str
    text: str = ""
    tool_calls: tuple[ToolCallData, ...] = ()
    usage: TokenUsage = TokenUsage()
    finish_reason: str | None = None
    duration_ms: int = 0
    provider_data: dict[str, JsonValue] | None = None
    """Opaque data the provider needs back on later turns (thinking blocks, thought
    signatures), keyed by provider; see ``gm_agent.llm.Move``."""
    cost_usd: float | None = None
    """What the request cost in US dollars, priced when it was made
    (:mod:`gm_agent.llm.prices`); ``None`` when gm knows no price for the model."""
    window_tokens: int | None = None
    """The model's context window in tokens when it answered (as compaction saw it;
    see ``ContextCompacted``), so a viewer can show how full the context is;
    ``None`` in responses journaled before gm recorded it."""


class ToolCalled(_Frozen):
    """The kernel is about to carry out one tool call of the model's move.

    ``decision`` is the policy's (``allow``, ``deny``; ``approved`` or ``denied``
    after an approval was asked for), ``risk`` the call's risk and ``rule`` the key
    of the rule (or risk) that decided; see docs/policy.md.
    """

    kind: Literal["tool.called"] = "tool.called"
    v: int = 1
    call_id: str
    name: str
    args: dict[str, JsonValue] = Field(default_factory=dict)
    decision: Literal["allow", "deny", "approved", "denied"] | None = None
    risk: Literal["safe", "elevated", "dangerous"] | None = None
    rule: str | None = None


class ApprovalRequested(_Frozen):
    """A tool call needs a person's approval; the run waits (``waiting``, reason ``approval``).

    ``rule`` is the key of the rule (or risk) that asked, ``reason`` says why.
    """

    kind: Literal["approval.requested"] = "approval.requested"
    v: int = 1
    call_id: str
    name: str
    args: dict[str, JsonValue] = Field(default_factory=dict)
    risk: Literal["safe", "elevated", "dangerous"]
    rule: str
    reason: str


class ApprovalGranted(_Frozen):
    """Someone approved a waiting call. ``always`` remembers it for the rule, in the
    ``run`` or the ``project``; ``by`` says who (``user``, or ``--yes``)."""

    kind: Literal["approval.granted"] = "approval.granted"
    v: int = 1
    call_id: str
    always: Literal["run", "project"] | None = None
    by: str = "user"


class ApprovalDenied(_Frozen):
    """Someone denied a waiting call; ``reason`` is passed to the model."""

    kind: Literal["approval.denied"] = "approval.denied"
    v: int = 1
    call_id: str
    reason: str | None = None


class ToolReturned(_Frozen):
    """A tool call finished; ``output`` is exactly what the model will see."""

    kind: Literal["tool.returned"] = "tool.returned"
    v: int = 1
    call_id: str
    name: str
    ok: bool
    output: str
    malformed: bool = False
    """The call itself was malformed (an unknown tool, arguments that are not valid
    JSON): the model is told, and too many malformed moves in a row end the run."""


class JobIntent(_Frozen):
    """A side effect is about to start; committed before the effect.

    ``key`` is the idempotency key (see :mod:`gm_agent.jobs`), ``args_digest`` the
    sha256 of the canonical JSON arguments, ``idempotent`` whether running it twice
    is harmless.
    """

    kind: Literal["job.intent"] = "job.intent"
    v: int = 1
    job_id: str
    key: str
    job_kind: str
    args_digest: str
    idempotent: bool
    args: dict[str, JsonValue] = Field(default_factory=dict)
    call_id: str | None = None
    before_snapshot: str | None = None
    """For a shell job: the blob (sha256) listing every file's hash and mode before it ran."""


class JobResult(_Frozen):
    """A side effect finished; committed before anything depends on it.

    ``duration_ms`` is wall time in milliseconds over all attempts;
    ``exit_code`` is set for processes; ``error`` says why ``ok`` is false.
    ``output`` holds at most :data:`JOB_OUTPUT_CAP_BYTES`; when the whole output
    was longer it is stored as a blob whose sha256 is ``output_blob``.
    """

    kind: Literal["job.result"] = "job.result"
    v: int = 1
    job_id: str
    key: str
    job_kind: str
    ok: bool
    output: str = ""
    error: str | None = None
    exit_code: int | None = None
    duration_ms: int = 0
    attempts: int = 1
    output_blob: str | None = None


class JobAttemptFailed(_Frozen):
    """One attempt of a job failed in a way worth retrying; the next starts in ``retry_in_ms``."""

    kind: Literal["job.attempt_failed"] = "job.attempt_failed"
    v: int = 1
    job_id: str
    key: str
    job_kind: str
    attempt: int
    error: str
    retry_in_ms: int


class JobAmbiguous(_Frozen):
    """After a crash, a non-idempotent job had an intent and no result: its outcome is unknown."""

    kind: Literal["job.ambiguous"] = "job.ambiguous"
    v: int = 1
    job_id: str
    key: str
    job_kind: str
    message: str


class JobCancelled(_Frozen):
    """A job was stopped while running (interrupt or cancel); it may have partly run."""

    kind: Literal["job.cancelled"] = "job.cancelled"
    v: int = 1
    job_id: str
    key: str
    job_kind: str
    reason: str


class PatchIntent(_Frozen):
    """A set of file changes is about to be written; their contents are already blobs.

    A crash before the matching ``patch.applied`` is reconciled on recovery by
    comparing each file's hash with ``before_sha256`` and ``after_sha256``.
    """

    kind: Literal["patch.intent"] = "patch.intent"
    v: int = 1
    patch_id: str
    call_id: str | None = None
    files: tuple[FileChange, ...]


class PatchConflict(_Frozen):
    """A patch was not applied: files differ from the state it was planned against."""

    kind: Literal["patch.conflict"] = "patch.conflict"
    v: int = 1
    patch_id: str
    call_id: str | None = None
    mismatches: tuple[FileMismatch, ...]


class PatchReverted(_Frozen):
    """``gm undo`` reverted a patch; ``files`` is the inverse patch that was applied.

    ``undo_id`` groups the patches one ``gm undo`` reverted (``gm redo`` replays the
    latest group); ``forced`` says the user's later edits were overwritten.
    """

    kind: Literal["patch.reverted"] = "patch.reverted"
    v: int = 1
    patch_id: str
    undo_id: str
    files: tuple[FileChange, ...]
    forced: bool = False


class PatchReapplied(_Frozen):
    """``gm redo`` applied a reverted patch again."""

    kind: Literal["patch.reapplied"] = "patch.reapplied"
    v: int = 1
    patch_id: str
    undo_id: str
    files: tuple[FileChange, ...]
    forced: bool = False


class PatchApplied(_Frozen):
    """A set of file changes was written to the workspace (by a tool, or a shell command)."""

    kind: Literal["patch.applied"] = "patch.applied"
    v: int = 1
    patch_id: str
    call_id: str | None = None
    files: tuple[FileChange, ...]


class RunResumed(_Frozen):
    """A process took over the run after it stopped (crash, interrupt) and reconciled it.

    ``owner`` is the new lease holder (``host:pid:nonce``); ``status`` what the
    run was found in.
    """

    kind: Literal["run.resumed"] = "run.resumed"
    v: int = 1
    owner: str
    status: RunStatus


class RunForked(_Frozen):
    """A run was forked: its history is ``parent_id``'s up to ``fork_seq``, then its own.

    The parent's events are referenced, not copied. The fork keeps the parent's
    conversation, step count and token usage at that point; its jobs and patches
    are its own. ``model`` and ``max_steps`` are the fork's. ``force_restore``: the
    fork's first patch (files back to the fork point) overwrites the user's edits.
    ``steps``, ``input_tokens`` and ``output_tokens`` are the parent's at the fork
    point (the ``runs`` listing counts them; the fold has them already).
    """

    kind: Literal["run.forked"] = "run.forked"
    v: int = 1
    parent_id: str
    fork_seq: int
    task: str
    task_path: str | None = None
    model: str
    max_steps: int
    force_restore: bool = False
    steps: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class CheckpointSaved(_Frozen):
    """The run's state after event ``upto_seq`` was saved as a checkpoint.

    ``state_hash`` is the hex sha256 of the state's canonical JSON; ``steps`` the
    step count it holds. Committed in the same transaction as the checkpoint.
    """

    kind: Literal["checkpoint.saved"] = "checkpoint.saved"
    v: int = 1
    upto_seq: int
    state_hash: str
    steps: int


class SandboxProbed(_Frozen):
    """How the process now executing the run confines its shell commands.

    ``backend`` is ``bubblewrap``, ``landlock`` or ``none`` (commands run
    unconfined); ``detail`` says why. Recorded each time a process takes the run on.
    """

    kind: Literal["sandbox.probed"] = "sandbox.probed"
    v: int = 1
    backend: Literal["bubblewrap", "landlock", "none"]
    network: bool = False
    detail: str = ""


class BudgetRaised(_Frozen):
    """Someone raised a run's limits (``gm resume --max-steps N --budget KEY=VALUE``)."""

    kind: Literal["budget.raised"] = "budget.raised"
    v: int = 1
    max_steps: int | None = None
    budget: dict[str, JsonValue] = Field(default_factory=dict)


class ModelFallback(_Frozen):
    """The run moved from ``from_model`` to ``to_model`` (the next of its ``models``)
    because ``from_model``'s provider is failing; ``reason`` is the last error."""

    kind: Literal["model.fallback"] = "model.fallback"
    v: int = 1
    from_model: str
    to_model: str
    reason: str


class ContextFile(_Frozen):
    """A project context file the model was shown (``AGENTS.md``, ``CLAUDE.md``, ...).

    ``path`` is relative to the workspace; ``bytes`` the size of what was shown
    (UTF-8); ``imported_by`` the file whose ``@path`` pulled it in; ``truncated``
    whether the size cap cut it.
    """

    path: str
    sha256: str
    bytes: int
    imported_by: str | None = None
    truncated: bool = False


class ContextLoaded(_Frozen):
    """Project context files were read for the run's system prompt.

    ``text`` is the section exactly as the model sees it (so a resumed or replayed
    run sees what the first process saw, whatever the files say now), ending with
    the skill catalogue when the run may call ``load_skill``; ``skipped`` says
    which files or imports were left out, and why.
    """

    kind: Literal["context.loaded"] = "context.loaded"
    v: int = 1
    files: tuple[ContextFile, ...]
    text: str
    skipped: tuple[str, ...] = ()
    skills: tuple[str, ...] = ()
    """The skills the catalogue at the end of ``text`` offers, as ``name (source)``."""


class ContextCompacted(_Frozen):
    """Older parts of the conversation are sent to the model in short from now on.

    The journal keeps every turn whole; only the request is shortened. Tool outputs
    (and long tool-call arguments) of turns before ``truncated_before`` are cut
    to their head and tail with a marker; turns from the first step up to
    ``dropped_before`` are left out, replaced by a note. Both are indexes into the
    conversation and only ever grow. ``tokens_before`` and ``tokens_after`` are
    gm's estimates of the request's size against ``window_tokens``.
    """

    kind: Literal["context.compacted"] = "context.compacted"
    v: int = 1
    truncated_before: int
    dropped_before: int = 0
    tokens_before: int
    tokens_after: int
    window_tokens: int


TriggerKind = Literal["webhook", "files", "schedule"]


class TriggerFired(_Frozen):
    """A trigger fired (``gm serve``): a webhook delivery, a settled burst of file
    changes, or a schedule's time.

    Journaled in the trigger's own stream (``run_id`` ``trigger:NAME``), in the same
    commit as the run it starts (``started_run``), or with ``skipped`` saying why
    none was started. Webhook firings have the id ``webhook:NAME:DELIVERY`` and
    schedule firings ``schedule:NAME:SCHEDULED_AT``, so a redelivery or a restart
    never fires twice. ``next_at`` (schedules) is the following fire time, where a
    restarted daemon picks up.
    """

    kind: Literal["trigger.fired"] = "trigger.fired"
    v: int = 1
    trigger: str
    on: TriggerKind
    started_run: str | None = None
    skipped: str | None = None
    delivery_id: str | None = None
    event: str | None = None
    paths: tuple[str, ...] = ()
    scheduled_at: str | None = None
    next_at: str | None = None
    schedule: str | None = None
    payload: JsonValue = None


class ScheduleArmed(_Frozen):
    """A schedule trigger was set up (or its expression changed, or missed firings
    were skipped): it fires next at ``next_at`` (RFC 3339). ``schedule`` is the
    expression (``cron 0 2 * * * Europe/Paris``, ``every 30s``) the time comes from."""

    kind: Literal["schedule.armed"] = "schedule.armed"
    v: int = 1
    trigger: str
    schedule: str
    next_at: str | None


class WebhookRejected(_Frozen):
    """A request to a webhook trigger was refused with ``status``: a bad or missing
    signature, a body too large or not JSON, a secret not configured. Nothing else
    is journaled for it. ``delivery_id`` is what the request claimed (unverified)."""

    kind: Literal["webhook.rejected"] = "webhook.rejected"
    v: int = 1
    trigger: str | None
    path: str
    status: int
    reason: str
    delivery_id: str | None = None


class SchemeStepSkipped(_Frozen):
    """A scheme step did not run: its ``when`` rendered false, or a step it depends
    on did not succeed (``reason`` says which). Steps that run are jobs instead."""

    kind: Literal["scheme.step_skipped"] = "scheme.step_skipped"
    v: int = 1
    step: str
    reason: str


class ChildOutcome(_Frozen):
    """One child run as a join found it: its status, its summary or error, and
    the workspace files its applied patches changed."""

    run_id: str
    status: RunStatus
    summary: str | None = None
    error: str | None = None
    files: tuple[str, ...] = ()


class AgentsJoined(_Frozen):
    """A ``wait_agents`` call's result: the group's children as the join policy
    left them (the children it cancelled, cancelled).

    ``outcome`` is ``satisfied`` (the policy was met), ``failed`` (it could not
    be, or a child failed under ``fail_fast``) or ``timed_out``. Journaled once
    per call, with the call's ``tool.returned`` after it; a resumed run serves it.
    """

    kind: Literal["agents.joined"] = "agents.joined"
    v: int = 1
    call_id: str
    group: str
    policy: str
    on_failure: str
    outcome: Literal["satisfied", "failed", "timed_out"]
    reason: str
    children: tuple[ChildOutcome, ...] = ()


class RunFinished(_Frozen):
    """A run reached a terminal status, with a summary (success) or an error."""

    kind: Literal["run.finished"] = "run.finished"
    v: int = 1
    status: TerminalStatus
    summary: str | None = None
    error: str | None = None


AnyEventData = Annotated[
    RunCreated
    | RunStatusChanged
    | UserMessage
    | RunInterrupt
    | RunCancel
    | ModelResponse
    | ToolCalled
    | ToolReturned
    | ApprovalRequested
    | ApprovalGranted
    | ApprovalDenied
    | JobIntent
    | JobResult
    | JobAttemptFailed
    | JobAmbiguous
    | JobCancelled
    | PatchIntent
    | PatchApplied
    | PatchConflict
    | PatchReverted
    | PatchReapplied
    | RunResumed
    | RunForked
    | CheckpointSaved
    | SandboxProbed
    | BudgetRaised
    | ModelFallback
    | ContextLoaded
    | ContextCompacted
    | TriggerFired
    | ScheduleArmed
    | WebhookRejected
    | SchemeStepSkipped
    | AgentsJoined
    | RunFinished,
    Field(discriminator="kind"),
]

_DATA_ADAPTER: TypeAdapter[AnyEventData] = TypeAdapter(AnyEventData)


class Event(_Frozen):
    """One immutable journal row. ``seq`` is ``None`` until the journal commits it."""

    seq: int | None = None
    id: str
    run_id: str
    at: str
    source: EventSource
    causation_id: str | None = None
    data: AnyEventData

    @property
    def kind(self) -> str:
        """The event's kind, e.g. ``"tool.called"``."""
        return self.data.kind

    @property
    def v(self) -> int:
        """The version of the event's data schema."""
        return self.data.v

    def payload(self) -> dict[str, Any]:
        """The ``data`` column: the payload as JSON-safe values, without ``kind`` and ``v``.

        A job's own kind (``job_kind`` in the model) is written as ``kind``, the
        name other tools read (issue #2 fixes the job events' data keys).
        """
        dumped = self.data.model_dump(mode="json", by_alias=True, exclude={"kind", "v"})
        if "job_kind" in dumped:
            dumped["kind"] = dumped.pop("job_kind")
        return dumped

    def to_record(self) -> dict[str, Any]:
        """The event as the flat record ``gm log --json`` prints."""
        return {
            "seq": self.seq,
            "id": self.id,
            "run_id": self.run_id,
            "kind": self.kind,
            "v": self.v,
            "at": self.at,
            "source": self.source,
            "causation_id": self.causation_id,
            "data": self.payload(),
        }


def event_from_record(record: dict[str, Any]) -> Event:
    """Parse a flat record (a journal row or a ``gm log --json`` line) into an Event.

    Args:
        record: mapping with ``seq, id, run_id, kind, v, at, source,
            causation_id`` and ``data`` (a dict).

    Raises:
        ValueError: the record does not describe a known event (a
            ``pydantic.ValidationError``), or its version is newer than this code.
    """
    data = dict(record["data"])
    if "kind" in data:  # a job's own kind; see Event.payload
        data["job_kind"] = data.pop("kind")
    data.update(kind=record["kind"], v=record["v"])
    event = Event.model_validate(
        {
            "seq": record.get("seq"),
            "id": record["id"],
            "run_id": record["run_id"],
            "at": record["at"],
            "source": record["source"],
            "causation_id": record.get("causation_id"),
            "data": data,
        }
    )
    known = type(event.data).model_fields["v"].default
    if record["v"] > known:
        raise ValueError(
            f"event {record['id']!r} is {record['kind']!r} version {record['v']}, "
            f"but this gm_agent reads up to version {known}; upgrade gm_agent"
        )
    return event


def new_event(
    clock: Clock,
    run_id: str,
    source: EventSource,
    data: AnyEventData,
    causation_id: str | None = None,
    event_id: str | None = None,
) -> Event:
    """Make an uncommitted event with the clock's current time and a fresh id (or
    ``event_id``, a stable one, for idempotent delivery)."""
    return Event(
        id=event_id or clock.new_id(),
        run_id=run_id,
        at=format_timestamp(clock.now()),
        source=source,
        causation_id=causation_id,
        data=data,
    )
