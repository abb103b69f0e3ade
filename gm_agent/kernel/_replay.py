"""``gm replay``: fold a run again from its events and check it against the journal.

Two checks, neither with side effects nor model calls:

- :func:`replay_run` checks the *record*: every event of the run's history still
  has the digest it was written with (an edited, removed or inserted event breaks
  the chain there), every event parses, the events fold without an illegal
  transition, and the state at each checkpoint hashes to the checkpoint's
  ``state_hash``.
- :func:`replay_recorded` checks the *code*: it walks the recorded history and,
  at every point where the kernel acted, asks today's kernel what it would do
  (:func:`~gm_agent.kernel._decide.next_action`, the idempotency keys, the tool
  lookup and argument check, building the model request), with model replies
  and job results served from the journal. The first answer that differs from
  the record is reported: a regression test of the runtime against real runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ValidationError

from gm_agent.errors import IllegalTransition, JournalCorrupt
from gm_agent.events import (
    Event,
    JobIntent,
    JobResult,
    RunFinished,
    RunStatus,
    RunStatusChanged,
    ToolCalled,
    UserMessage,
)
from gm_agent.journal import Journal
from gm_agent.kernel._checkpoint import history, lineage
from gm_agent.kernel._decide import (
    Action,
    CallTool,
    Correct,
    EndRun,
    Pause,
    RequestMove,
    SkipCall,
    model_attempts,
    model_job_key,
    next_action,
    shell_job_key,
)
from gm_agent.kernel._scheme_record import scheme_record_of
from gm_agent.kernel._scheme_replay import replay_scheme
from gm_agent.kernel.context import build_request
from gm_agent.kernel.state import TERMINAL, Folder, RunState
from gm_agent.tools import ShellCommand, ToolRegistry

__all__ = ["ReplayProblem", "ReplayReport", "replay_recorded", "replay_run"]


@dataclass(frozen=True)
class ReplayProblem:
    """Where a replay diverged from the journal: the event's ``seq`` and what differs."""

    seq: int
    message: str


@dataclass
class ReplayReport:
    """The outcome of a replay.

    Attributes:
        run_id: the run replayed.
        events: the events of its history (a fork's include its parent's).
        checkpoints: checkpoints whose hash was compared.
        state_hash: the hash of the final state (empty when the fold stopped).
        problems: what diverged, in seq order; empty when consistent.
    """

    run_id: str
    events: list[Event] = field(default_factory=lambda: [])
    checkpoints: int = 0
    state_hash: str = ""
    problems: list[ReplayProblem] = field(default_factory=lambda: [])

    @property
    def ok(self) -> bool:
        """True when nothing diverged."""
        return not self.problems

    @property
    def first_divergence(self) -> ReplayProblem | None:
        """The problem with the lowest seq, if any."""
        return min(self.problems, key=lambda p: p.seq) if self.problems else None


async def replay_run(journal: Journal, run_id: str) -> ReplayReport:
    """Fold ``run_id``'s history from scratch and check digests, ends and checkpoints.

    Raises:
        JournalError: the journal cannot be read at all.
    """
    report = ReplayReport(run_id)
    expected: dict[int, str] = {}
    try:
        chain = await lineage(journal, run_id)
    except JournalCorrupt as exc:
        report.problems.append(ReplayProblem(exc.seq or 0, str(exc)))
        return report
    for member, upto in chain:
        broken = await journal.verify_chain(member)
        if broken is not None and (upto is None or broken <= upto):
            report.problems.append(ReplayProblem(broken, _CHANGED))
        hashes = await journal.checkpoint_hashes(member)
        expected.update({s: h for s, h in hashes.items() if upto is None or s <= upto})
    try:
        report.events = await history(journal, run_id)
    except JournalCorrupt as exc:
        report.problems.append(ReplayProblem(exc.seq or 0, str(exc)))
        return report
    folder = Folder()
    for event in report.events:
        seq = event.seq or 0
        try:
            folder.add(event)
        except IllegalTransition as exc:
            report.problems.append(ReplayProblem(seq, f"does not fold: {exc}"))
            return report
        if seq in expected:
            report.checkpoints += 1
            state_hash, saved = folder.state.state_hash(), expected.pop(seq)
            if state_hash != saved:
                report.problems.append(ReplayProblem(seq, _mismatch(state_hash, saved)))
    report.state_hash = folder.state.state_hash()
    report.problems += await _missing_tail(journal, run_id, report.events, expected)
    report.problems.sort(key=lambda p: p.seq)
    return report


_CHANGED = "the event was changed after it was written (its digest does not match)"


def _mismatch(state_hash: str, saved: str) -> str:
    return (
        f"the state after this event hashes to {state_hash[:16]}, "
        f"but its checkpoint says {saved[:16]}"
    )


async def _missing_tail(
    journal: Journal, run_id: str, events: list[Event], unreached: dict[int, str]
) -> list[ReplayProblem]:
    """Events missing from the end of the run: a checkpoint past its last event, or
    a last event older than the ``runs`` record says (the digest chain cannot see a
    cut-off end: nothing comes after it to break)."""
    last = (events[-1].seq or 0) if events else 0
    problems = [
        ReplayProblem(seq, f"a checkpoint was saved after seq {seq}, but the events end at {last}")
        for seq in unreached
    ]
    recorded = (await journal.get_run(run_id)).last_seq
    if recorded > last:
        problems.append(
            ReplayProblem(
                last + 1,
                f"the run's record says its last event is seq {recorded}, but its "
                f"events end at seq {last} (events missing from the end)",
            )
        )
    return problems


async def replay_recorded(journal: Journal, run_id: str, registry: ToolRegistry) -> ReplayReport:
    """Re-run the kernel's decisions over ``run_id``'s recorded history.

    At each recorded model request, tool call, job intent and end of the run,
    the current code decides what it would do from the state folded so far, with
    model replies and job results served from the journal. Only the first
    difference is reported (after it, the record and the code no longer share a
    past). A scheme run's step jobs are checked against its recorded scheme
    instead (:mod:`~gm_agent.kernel._scheme_replay`).

    Raises:
        JournalError: the journal cannot be read.
    """
    report = ReplayReport(run_id)
    report.events = await history(journal, run_id)
    record = await scheme_record_of(journal, run_id)
    if record is not None:  # its decisions are its steps' jobs
        report.state_hash, problem = await replay_scheme(journal, record, report.events)
        report.problems += [ReplayProblem(*problem)] if problem else []
        return report
    folder = Folder()
    decided: Action | None = None
    for event in report.events:
        data = event.data
        if _decision_point(folder.status, event):
            state = folder.state
            problem = _check(state, event, decided, registry)
            if problem is not None:
                report.problems.append(ReplayProblem(event.seq or 0, problem))
                return report
            if isinstance(data, JobIntent | ToolCalled | RunStatusChanged):
                decided = _decision(state, event)
        folder.add(event)
    report.state_hash = folder.state.state_hash()
    return report


def _decision_point(status: RunStatus, event: Event) -> bool:
    """Whether the kernel decided ``event`` (so the current code must be asked)."""
    data = event.data
    if isinstance(data, RunFinished):
        return True  # checked against the decision made at the status change before it
    if isinstance(data, UserMessage):
        return status == "running" and event.source == "kernel"  # a Correct
    return status == "running" and isinstance(data, JobIntent | ToolCalled | RunStatusChanged)


def _decision(state: RunState, event: Event) -> Action | None:
    data = event.data
    if isinstance(data, JobIntent) and data.job_kind == "model":
        return next_action(state)
    if isinstance(data, ToolCalled):
        return next_action(state)
    if isinstance(data, RunStatusChanged) and data.to in TERMINAL and not _ended_by_effect(state):
        return next_action(state)
    return None


def _show(action: Action) -> str:
    match action:
        case RequestMove(step):
            return f"ask the model for step {step}"
        case CallTool(_, call):
            return f"call {call.name}({call.args})"
        case EndRun(status, summary, error):
            return f"end the run as {status} ({summary or error})"
        case Correct():
            return "tell the model its reply was empty"
        case SkipCall(_, call):
            return f"skip {call.name} for a user message"
        case Pause(reason):
            return f"pause ({reason})"


def _check(
    state: RunState, event: Event, decided: Action | None, registry: ToolRegistry
) -> str | None:
    """What the current kernel would do differently at ``event``, or None."""
    data = event.data
    match data:
        case JobIntent(job_kind="model") if not state.open_jobs():
            action = next_action(state)
            if not isinstance(action, RequestMove):
                return f"the journal asks the model for a move here; the loop would {_show(action)}"
            model = str(data.args.get("model", ""))
            key = model_job_key(
                state.run_id, action.step, model, model_attempts(state, action.step)
            )
            if key != data.key:
                return f"the model request's idempotency key would now be {key}, not {data.key}"
            tools = tuple(t.spec() for t in registry.select(state.tools))
            build_request(state, tools, idempotency_key=key)  # the request still builds
        case JobIntent(job_kind="shell"):
            if not isinstance(decided, CallTool):
                return "the journal runs a shell command that no tool call asked for"
            command = ShellCommand(
                str(data.args.get("command", "")), float(str(data.args.get("timeout_s", 0)))
            )
            key = shell_job_key(state.run_id, state.step, decided.index, command)
            if key != data.key:
                return f"the shell command's idempotency key would now be {key}, not {data.key}"
        case ToolCalled():
            action = next_action(state)
            if not isinstance(action, CallTool) or (
                action.call.call_id,
                action.call.name,
                action.call.args,
            ) != (data.call_id, data.name, data.args):
                return f"the journal calls {data.name}({data.args}); the loop would {_show(action)}"
            return _check_tool(state, data, registry)
        case UserMessage():  # the kernel told the model its reply was empty
            action = next_action(state)
            if action != Correct(data.text):
                return f"the journal tells the model {data.text!r}; the loop would {_show(action)}"
        case RunFinished() if isinstance(decided, EndRun):
            if (data.status, data.summary, data.error) != (
                decided.status,
                decided.summary,
                decided.error,
            ):
                return f"the run ended as {data.status}; the loop would {_show(decided)}"
        case RunStatusChanged(to=to) if to in TERMINAL and not _ended_by_effect(state):
            action = next_action(state)
            if not isinstance(action, EndRun) or action.status != to:
                return f"the journal ends the run as {to}; the loop would {_show(action)}"
        case _:
            pass
    return None


def _check_tool(state: RunState, data: ToolCalled, registry: ToolRegistry) -> str | None:
    """A recorded call the current tools would refuse, when the record shows it ran."""
    tools = {t.name: t for t in registry.select(state.tools)}
    tool = tools.get(data.name)
    if tool is None:
        return f"the journal calls tool {data.name!r}, which the loop no longer has"
    try:
        tool.args_model.model_validate(data.args)
    except ValidationError as exc:
        return f"the loop would now refuse the arguments of {data.name}: {exc.errors()[0]['msg']}"
    return None


def _ended_by_effect(state: RunState) -> bool:
    """The run ends because of what just happened, not by a decision of :func:`next_action`:
    the ``finish`` tool returned, or the model request failed."""
    last = state.conversation[-1] if state.conversation else None
    if last is not None and last.role == "tool" and last.name == "finish" and last.ok:
        return True
    model_jobs = [job for job in state.jobs if job.job_kind == "model"]
    result: JobResult | None = model_jobs[-1].result if model_jobs else None
    return result is not None and not result.ok
