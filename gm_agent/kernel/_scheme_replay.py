"""``gm replay --recorded`` of a scheme run: today's scheme kernel against its jobs.

A scheme run's decisions are its steps' jobs, not a model's moves. At each
recorded step job, the scheme recorded in ``run.created`` is asked what that
step's job would be now, from the outcomes recorded before it (served, never
run): its idempotency key (``RUN/scheme/STEP/ATTEMPT``), its kind, and its
templates rendered (the command, the tool's arguments, the prompt, the agent's
task, a called scheme's parameters). The first difference is reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gm_agent.errors import IllegalTransition, SchemeError
from gm_agent.events import Event, JobIntent, SchemeStepSkipped
from gm_agent.journal import Journal
from gm_agent.kernel._scheme_agents import FALLBACK_STEP
from gm_agent.kernel._scheme_jobs import step_body
from gm_agent.kernel._scheme_record import SchemeRecord, StepRecord, fold_steps, step_key
from gm_agent.kernel.state import Folder, RunState
from gm_agent.schemes import Scheme, Step, StepView, bind_params

__all__ = ["replay_scheme"]


async def replay_scheme(
    journal: Journal, record: SchemeRecord, events: Sequence[Event]
) -> tuple[str, tuple[int, str] | None]:
    """Fold a scheme run's ``events`` (its history, oldest first) and check each of
    its step jobs against ``record``'s scheme.

    Returns:
        The final state's hash ("" when the fold stopped), and the first
        divergence as ``(seq, what differs)``, if any.

    Raises:
        JournalError: a recorded output cannot be read.
    """
    folder = Folder()
    skipped: list[SchemeStepSkipped] = []
    for event in events:
        data = event.data
        if isinstance(data, JobIntent) and data.key.startswith(f"{event.run_id}/scheme/"):
            problem = await _check(journal, record, folder.state, skipped, data)
            if problem is not None:
                return "", (event.seq or 0, problem)
        elif isinstance(data, SchemeStepSkipped):
            skipped.append(data)
        try:
            folder.add(event)
        except IllegalTransition as exc:
            return "", (event.seq or 0, f"does not fold: {exc}")
    return folder.state.state_hash(), None


async def _check(
    journal: Journal,
    record: SchemeRecord,
    state: RunState,
    skipped: Sequence[SchemeStepSkipped],
    intent: JobIntent,
) -> str | None:
    """What today's scheme kernel would do differently than job ``intent``, or None."""
    path, attempt = intent.args.get("step"), intent.args.get("attempt")
    if not isinstance(path, str) or not isinstance(attempt, int):
        return f"the journal runs job {intent.key} of no scheme step"
    key = step_key(state.run_id, path, attempt)
    if key != intent.key:
        return f"the step's idempotency key would now be {key}, not {intent.key}"
    if path == FALLBACK_STEP:
        return None if intent.job_kind == "agent" else "the fallback would now be an agent run"
    shas = [j.result.output_blob for j in state.jobs if j.result and j.result.output_blob]
    blobs = await journal.get_blobs(shas)
    outputs = {sha: data.decode("utf-8", "replace") for sha, data in blobs.items()}
    records = fold_steps(state.run_id, state.jobs, skipped, outputs)
    try:
        step, params, views = _locate(record, path, records)
        kind, body = step_body(step, params, views)
    except (KeyError, SchemeError) as exc:
        return f"step {path!r} would not run now: {exc}"
    if kind != intent.job_kind:
        return f"step {path!r} would now be a {kind} job, not a {intent.job_kind} one"
    for name, value in body.items():
        if intent.args.get(name) != value:
            return f"step {path!r}'s {name} would now be {value!r}, not {intent.args.get(name)!r}"
    return None


def _locate(
    record: SchemeRecord, path: str, records: Mapping[str, StepRecord]
) -> tuple[Step, Mapping[str, object], dict[str, StepView]]:
    """Step ``path`` (dotted inside called schemes), the parameters of the scheme
    it belongs to, and what its templates see of that scheme's steps so far.

    Raises:
        KeyError: the recorded scheme has no such step.
        SchemeError: a called scheme's recorded parameters no longer bind.
    """
    scheme: Scheme = record.scheme
    params: Mapping[str, object] = record.params
    prefix = ""
    *outer, name = path.split(".")
    for part in outer:
        calling = scheme.step(part)
        if calling.scheme is None:
            raise KeyError(f"{prefix}{part} calls no scheme")
        found = records.get(prefix + part)
        given = found.job.args.get("params") if found and found.job else None
        scheme = record.subscheme(calling.scheme.name)
        params = bind_params(scheme, given if isinstance(given, dict) else {})
        prefix += f"{part}."
    views = {
        key.removeprefix(prefix): found.view
        for key, found in records.items()
        if key.startswith(prefix) and "." not in key.removeprefix(prefix)
    }
    return scheme.step(name), params, views
