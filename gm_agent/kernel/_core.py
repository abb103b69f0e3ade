"""What every part of the kernel shares: a run's live state and the event primitives.

:class:`KernelCore` holds what one kernel knows about the run it drives (the
folded state, its lease, tools, sandbox and workspace writer, and where the
steering of the run stands) and the primitives the loop, its control watch, its
tool calls and its model requests all build on: committing events through
``evolve``'s rules (``_emit``, ``_set_status``, ``_finish``), showing them to the
observer, and making the job runner and the workspace writer. The parts are
mixins of this class, put together as :class:`~gm_agent.kernel.loop.Kernel`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import anyio
from anyio.abc import TaskGroup

from gm_agent.clock import Clock
from gm_agent.events import (
    AnyEventData,
    Event,
    EventSource,
    JobAttemptFailed,
    JobResult,
    RunFinished,
    RunStatus,
    RunStatusChanged,
    TerminalStatus,
    new_event,
)
from gm_agent.jobs import JobRunner, JobSpec, ShellSandbox
from gm_agent.journal import DEFAULT_LEASE_S, CheckpointRecord, Journal, new_owner
from gm_agent.kernel._approvals import ApprovalMode
from gm_agent.kernel._checkpoint import ItemCodes
from gm_agent.kernel._live import LiveTap
from gm_agent.kernel._writer import WorkspaceWriter
from gm_agent.kernel.context import Messages
from gm_agent.kernel.state import Folder, JobView, RunState, check_moves
from gm_agent.llm import Delta, Model, ModelPool
from gm_agent.policy import Redactor
from gm_agent.settings import Settings
from gm_agent.tools import Tool, ToolRegistry

log = logging.getLogger("gm_agent.kernel")

EventObserver = Callable[[Event | Delta], None]
"""Called with each event right after it is committed, and with each piece of a
model's reply while it streams (a :class:`~gm_agent.llm.Delta`, never journaled:
the journal gets the whole ``model.response``). For live output."""


ChildTask = Literal["running", "stopped", "elsewhere"]
"""Where a child run is: executed by this process, stopped here (it ended, or waits
for a person), or executed by another process."""


class KernelCore:
    """A kernel's live state and the primitives its parts share; the arguments are
    described on :class:`~gm_agent.kernel.loop.Kernel`."""

    def __init__(
        self,
        journal: Journal,
        model: Model,
        registry: ToolRegistry,
        settings: Settings,
        *,
        clock: Clock,
        environ: Mapping[str, str],
        observer: EventObserver | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        heartbeat: bool = True,
        approvals: ApprovalMode = "stop",
        models: ModelPool | None = None,
    ) -> None:
        self._journal = journal
        self._model: Model = model
        self._models = models
        self._registry = registry
        self._settings = settings
        self._clock = clock
        self._environ = environ
        self._observer = observer
        self._live: LiveTap | None = None  # the streaming reply, for other processes
        self._lease_s = lease_s
        self._heartbeat_on = heartbeat
        self._owner = new_owner(clock.new_id())
        self._lease_lost = False
        self._folder = Folder()  # the run's state, each committed event folded in
        self._messages = Messages()  # what the model sees of it, made once a turn
        self._windows: dict[str, int] = {}  # context windows from the price table, by model
        self._stored_nodes: set[str] = set()
        self._item_codes = ItemCodes()  # each turn, job and patch encoded once
        self._checkpointed = (0, 0.0)  # (step, monotonic seconds) of the last checkpoint
        self._tools: dict[str, Tool] = {}
        self._workspace_writer: WorkspaceWriter | None = None
        self._sandbox: ShellSandbox | None = None
        self._approvals: ApprovalMode = approvals
        self._redactor = Redactor(environ)
        self._called_since_start = False  # a tool call ran in this process (loop check)
        self._seen_seq = 0  # every event of the run up to here is folded in
        self._own_ids: set[str] = set()  # events this kernel committed after _seen_seq
        self._in_flight: tuple[Literal["model", "tool"], anyio.CancelScope] | None = None
        # A stop the watcher saw while nothing was in flight: (seq, what it stops).
        self._stop_pending: tuple[int, Literal["any", "model"]] | None = None
        # Child runs (spawn_agent) this kernel executes, in the task group of execute().
        self._task_group: TaskGroup | None = None
        self._children: dict[str, ChildTask] = {}
        self._child_slots = anyio.Semaphore(settings.agents.max_concurrent)

    # -- the state ---------------------------------------------------------

    @property
    def _state(self) -> RunState:
        """The fold of the run's committed events (as this kernel knows them)."""
        return self._folder.state

    @_state.setter
    def _state(self, state: RunState) -> None:
        self._folder = Folder(state)

    # -- events ------------------------------------------------------------

    async def _emit(
        self,
        datas: Sequence[AnyEventData],
        cause: str | None = None,
        blobs: Iterable[bytes] = (),
        source: EventSource | None = None,
        checkpoint: CheckpointRecord | None = None,
        fenced: bool = False,
    ) -> list[Event]:
        """Check ``datas`` against the state (evolve), commit them, then fold them in.

        ``source`` overrides each event's usual source (a shell command's patch is
        ``job``'s); ``checkpoint`` is committed in the same transaction. Error
        texts of jobs and runs (a provider's message, an exception) are redacted first.
        ``fenced``: a decision, committed only if no one steered the run since the
        kernel last caught up (else ``Superseded``, and nothing is written).
        """
        datas = [self._redacted_error(d) for d in datas]
        events = [
            new_event(
                self._clock,
                self._state.run_id,
                source or _source(d),
                d,
                cause,
            )
            for d in datas
        ]
        # Raises IllegalTransition before anything is written; only the status can
        # make an event illegal, so this costs what the events hold, not the run.
        check_moves(self._folder.status, events)
        committed: list[Event] = []
        with anyio.CancelScope(shield=True):  # a commit and its fold are never split
            committed = await self._journal.append(
                events,
                blobs,
                lease_owner=self._owner,
                checkpoint=checkpoint,
                fence=(self._state.run_id, self._seen_seq) if fenced else None,
            )
        self._own_ids.update(event.id for event in committed)
        for event in committed:
            self._folder.add(event)  # one event's worth of work, however long the run
            self._notify(event)
        return committed

    def _redacted_error(self, data: AnyEventData) -> AnyEventData:
        if isinstance(data, JobAttemptFailed | JobResult | RunFinished) and data.error:
            redacted = self._redactor.redact(data.error)
            if redacted != data.error:
                return data.model_copy(update={"error": redacted})
        return data

    def _writer(self) -> WorkspaceWriter:
        """What carries out this run's file writes and shell commands."""
        if self._workspace_writer is None:
            self._workspace_writer = WorkspaceWriter(
                self._journal,
                self._clock,
                Path(self._state.workspace),
                self._owner,
                self._emit,
                self._settings.tools,
                self._environ,
                self._sandbox,
                self._redactor.redact,
                self._queued_for_writer,
            )
        return self._workspace_writer

    async def _queued_for_writer(self, holder: str | None) -> None:
        """Show that the run queues for another process's writer lock (``waiting``,
        with who holds it), and when the wait is over."""
        status = self._state.status
        if holder is not None and status == "running":
            reason = f"writer lock: queued behind {holder}"
            await self._emit([RunStatusChanged.between("running", "waiting", reason)])
        elif holder is None and status == "waiting" and self._state.pending_approval() is None:
            await self._emit([RunStatusChanged.between("waiting", "running", "writer lock free")])

    def _runner(self, cause: str | None) -> JobRunner:
        """A job runner whose events are caused by ``cause``."""

        async def emit(datas: Sequence[AnyEventData], blobs: Sequence[bytes]) -> None:
            await self._emit(datas, cause, blobs)

        return JobRunner(emit, self._clock)

    def _notify(self, event: Event | Delta) -> None:
        if self._live is not None:
            if isinstance(event, Delta):
                self._live.write(event.text)
            elif event.kind in ("model.response", "job.result", "job.cancelled"):
                self._live.clear()  # the request ended: the journal has what counts
        if self._observer is None:
            return
        try:
            self._observer(event)
        except Exception as exc:  # a closed pipe must not stop the run
            log.warning("live output stopped (%s); the run goes on, see `gm log`", exc)
            self._observer = None

    async def _set_status(self, to: RunStatus, reason: str | None = None) -> None:
        await self._emit([RunStatusChanged.between(self._state.status, to, reason)])

    async def _finish(
        self,
        status: TerminalStatus,
        *,
        summary: str | None = None,
        error: str | None = None,
        first: Sequence[AnyEventData] = (),
        cause: str | None = None,
        fenced: bool = False,
    ) -> None:
        """End the run; ``first`` events are committed in the same transaction, before.
        ``fenced``: only if no one steered the run meanwhile (see :meth:`_emit`)."""
        await self._emit(
            [
                *first,
                RunStatusChanged.between(self._state.status, status),
                RunFinished(status=status, summary=summary, error=error),
            ],
            cause,
            fenced=fenced,
        )


def spec_of(job: JobView) -> JobSpec:
    """The spec of a job the journal recorded: to run it again under the same key."""
    return JobSpec(
        job_id=job.job_id,
        key=job.key,
        kind=job.job_kind,
        args=job.args,
        idempotent=job.idempotent,
        call_id=job.call_id,
    )


def _source(data: AnyEventData) -> EventSource:
    """Who causes an event the kernel commits (ARCHITECTURE.md, "source")."""
    sources: dict[str, EventSource] = {
        "user": "user",
        "model": "model",
        "job": "job",
        "patch": "patch",
    }
    if data.kind == "model.fallback":  # the kernel's decision, not the model's move
        return "kernel"
    return sources.get(data.kind.partition(".")[0], "kernel")
