"""What a scheme run remembers: the procedure it started with, and each step's outcome.

A scheme run's ``run.created`` holds the scheme's text (and those of the schemes
its ``scheme`` steps call) and the bound parameters, so a resume executes exactly
what the run started with, even if the file changed since. Each step that runs is
one job whose key is ``{run_id}/scheme/{step}/{attempt}`` and whose arguments name
the ``step`` and ``attempt``; a step that does not run is a
``scheme.step_skipped``. Folding these gives each step's latest
:class:`StepRecord`, and the :class:`~gm_agent.schemes.StepView` templates see.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from pydantic import JsonValue

from gm_agent.errors import SchemeError
from gm_agent.events import RunCreated, SchemeStepSkipped
from gm_agent.journal import Journal
from gm_agent.kernel._checkpoint import load_state
from gm_agent.kernel.state import JobView, RunState
from gm_agent.schemes import Scheme, StepView, find_scheme, parse_scheme

__all__ = [
    "AMBIGUOUS_STEP",
    "SchemeRecord",
    "StepRecord",
    "StepStatus",
    "agent_runs_of",
    "descendants_of",
    "fold_steps",
    "parent_run_of",
    "record_scheme",
    "scheme_record_of",
    "step_key",
    "step_record",
]

AMBIGUOUS_STEP = (
    "outcome unknown: gm stopped while this step ran, so it may or may not have run, "
    "fully or in part; check its effects"
)
STOPPED_STEP = "stopped by an interruption while it ran; it may have partly run"

StepStatus = Literal["ok", "failed", "skipped", "unknown", "started"]
"""``unknown``: cut off by a stop (``job.ambiguous`` after a crash, or
``job.cancelled`` by an interruption), never a failure: the step runs again on
resume; ``started``: an intent without an outcome (the run stopped while the step
ran)."""


def step_key(run_id: str, step: str, attempt: int) -> str:
    """The idempotency key of ``attempt`` (1-based) of scheme step ``step`` (dotted
    inside a sub-scheme: ``check.lint``)."""
    return f"{run_id}/scheme/{step}/{attempt}"


@dataclass(frozen=True)
class SchemeRecord:
    """The procedure of a scheme run, as journaled in its ``run.created``.

    Attributes:
        scheme: the scheme, parsed from ``text``.
        text: the scheme file's text when the run was created.
        path: the file it was read from ("" when none).
        params: the bound parameters.
        subschemes: the text of each scheme a ``scheme`` step calls, by name.
    """

    scheme: Scheme
    text: str
    path: str
    params: dict[str, JsonValue]
    subschemes: dict[str, str]

    @property
    def sha256(self) -> str:
        """Hex sha256 of :attr:`text` (UTF-8)."""
        return hashlib.sha256(self.text.encode()).hexdigest()

    def to_json(self) -> dict[str, JsonValue]:
        """The ``run.created`` ``scheme`` field."""
        return {
            "name": self.scheme.name,
            "path": self.path,
            "sha256": self.sha256,
            "text": self.text,
            "params": self.params,
            "subschemes": dict(self.subschemes),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, JsonValue]) -> SchemeRecord:
        """Read the ``run.created`` ``scheme`` field back.

        Raises:
            SchemeError: the recorded text no longer parses (a newer gm's format).
        """
        text = str(data["text"])
        path = str(data.get("path") or "")
        params = cast(dict[str, JsonValue], data.get("params") or {})
        subs = cast(dict[str, str], data.get("subschemes") or {})
        scheme = parse_scheme(text, Path(path) if path else None)
        return cls(scheme, text, path, dict(params), dict(subs))

    def subscheme(self, name: str) -> Scheme:
        """The scheme a ``scheme`` step calls, as recorded.

        Raises:
            SchemeError: it was not recorded (a bug) or does not parse.
        """
        if name not in self.subschemes:
            raise SchemeError(f"scheme {name!r} was not recorded with run's scheme")
        return parse_scheme(self.subschemes[name], None)


def record_scheme(workspace: Path, scheme: Scheme, params: Mapping[str, object]) -> SchemeRecord:
    """Freeze ``scheme`` (read from its file again, so text and model agree) and the
    schemes its ``scheme`` steps call, recursively.

    Raises:
        SchemeError: a file cannot be read, a called scheme is unknown or calls
            back into one that is running (a cycle).
    """
    text = scheme.path.read_text(encoding="utf-8-sig") if scheme.path else ""
    parsed = parse_scheme(text, scheme.path) if text else scheme
    subs: dict[str, str] = {}
    _collect(workspace, parsed, subs, [parsed.name])
    bound = cast(dict[str, JsonValue], json.loads(json.dumps(dict(params))))
    return SchemeRecord(parsed, text, str(scheme.path or ""), bound, subs)


def _collect(workspace: Path, scheme: Scheme, into: dict[str, str], chain: list[str]) -> None:
    for step in scheme.steps:
        if step.scheme is None:
            continue
        name = step.scheme.name
        if name in chain:
            raise SchemeError(
                f"step {step.name!r} calls scheme {name!r}, which is running already "
                f"({' -> '.join([*chain, name])}); a scheme cannot call itself",
                path=str(scheme.path) if scheme.path else None,
                line=step.line_of("scheme.name") or None,
            )
        if name not in into:
            called = find_scheme(workspace, name)
            if called.path is None:
                raise SchemeError(f"scheme {name!r} has no file to record")
            into[name] = called.path.read_text(encoding="utf-8-sig")
            _collect(workspace, parse_scheme(into[name], called.path), into, [*chain, name])


async def scheme_record_of(journal: Journal, run_id: str) -> SchemeRecord | None:
    """The procedure of run ``run_id`` if it is a scheme run, else ``None``.

    Raises:
        SchemeError: the recorded scheme does not parse.
    """
    first = await journal.read(run_id, limit=1)
    if not first or not isinstance(first[0].data, RunCreated):
        return None
    recorded = first[0].data.scheme
    return None if recorded is None else SchemeRecord.from_json(recorded)


async def parent_run_of(journal: Journal, run_id: str) -> str | None:
    """The scheme run that run ``run_id`` is a step of (an ``agent`` step or the
    fallback), from its ``run.created``; ``None`` for any other run. Such a run is
    its parent's to drive: ``gm resume --all`` and ``gm serve`` leave it alone."""
    first = await journal.read(run_id, limit=1)
    return first[0].data.parent_run if first and isinstance(first[0].data, RunCreated) else None


async def descendants_of(journal: Journal, state: RunState) -> list[RunState]:
    """The states of every run ``state``'s run started (agent steps, the fallback,
    ``spawn_agent`` children) and of theirs, depth first, oldest first."""
    found: list[RunState] = []
    for child in await agent_runs_of(journal, state):
        child_state, _ = await load_state(journal, child)
        found += [child_state, *await descendants_of(journal, child_state)]
    return found


async def agent_runs_of(journal: Journal, state: RunState) -> list[str]:
    """The runs of a scheme run's ``agent`` steps and fallback, oldest first (none
    for any other run), from its state's ``agent`` jobs."""
    named = [job.args.get("child_run") for job in state.jobs if job.job_kind == "agent"]
    found = [child for child in dict.fromkeys(named) if isinstance(child, str)]
    return [child for child in found if await journal.has_run(child)]


@dataclass(frozen=True)
class StepRecord:
    """The latest outcome of one step, as the journal holds it.

    Attributes:
        status: see :data:`StepStatus`.
        view: what templates see of it (a skipped step's ``output`` is "").
        attempt: its latest attempt (0 for a skipped step).
        job: the latest attempt's job, if it ran.
        reason: why a skipped step did not run (its ``scheme.step_skipped``).
    """

    status: StepStatus
    view: StepView
    attempt: int = 0
    job: JobView | None = None
    reason: str = ""


def fold_steps(
    run_id: str,
    jobs: Iterable[JobView],
    skipped: Iterable[SchemeStepSkipped],
    outputs: Mapping[str, str] | None = None,
) -> dict[str, StepRecord]:
    """Each step's latest :class:`StepRecord`, by (dotted) step name.

    Args:
        run_id: the scheme run.
        jobs: the run's jobs (``RunState.jobs``); those of its steps are picked
            by their key.
        skipped: the run's ``scheme.step_skipped`` events.
        outputs: whole outputs by blob sha256, for results cut to 4 KiB.
    """
    steps: dict[str, StepRecord] = {}
    for data in skipped:
        steps[data.step] = StepRecord("skipped", StepView(skipped=True), reason=data.reason)
    prefix = f"{run_id}/scheme/"
    for job in jobs:
        if not job.key.startswith(prefix):
            continue
        name, attempt = str(job.args.get("step")), job.args.get("attempt")
        number = attempt if isinstance(attempt, int) else 1
        if name in steps and steps[name].attempt > number:
            continue
        steps[name] = step_record(job, number, outputs or {})
    return steps


def step_record(job: JobView, attempt: int, outputs: Mapping[str, str]) -> StepRecord:
    """The :class:`StepRecord` of attempt ``attempt`` of a step, from its job
    (``outputs``: whole outputs by blob sha256)."""
    result = job.result
    if job.status in ("ambiguous", "cancelled"):
        text = AMBIGUOUS_STEP if job.status == "ambiguous" else STOPPED_STEP
        return StepRecord("unknown", StepView(output=text, failed=True), attempt, job)
    if result is None:
        return StepRecord("started", StepView(), attempt, job)
    output = outputs.get(result.output_blob or "", result.output)
    value: JsonValue = None
    if job.job_kind == "llm" and result.ok:
        value = cast(JsonValue, json.loads(output))
    exit_code = result.exit_code if job.job_kind == "shell" else None
    failed = not result.ok
    if failed and not output:
        output = result.error or ""
    view = StepView(output=output, failed=failed, exit_code=exit_code, value=value)
    return StepRecord("failed" if failed else "ok", view, attempt, job)
