"""Scheme steps that are jobs: ``shell``, ``tool`` and ``llm`` steps, and their retries.

A step's attempt is one job. Its templates are rendered into the job's arguments
before the intent is committed, so a re-run after a crash (an ``idempotent``
step, or a model request) carries out exactly what was recorded. Shell steps go
through the kernel's :class:`~gm_agent.kernel._writer.WorkspaceWriter` (the
sandbox, the writer lock, and a patch for every byte a command changes), one at
a time within the process. Agent steps (child runs) are in
:mod:`~gm_agent.kernel._scheme_agents`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import anyio
from pydantic import JsonValue

from gm_agent.errors import JobError, ToolError
from gm_agent.events import AnyEventData, ModelResponse, SchemeStepSkipped
from gm_agent.jobs import JobOutcome, JobRunner, JobSpec, RetryPolicy
from gm_agent.kernel._controls import Steerable
from gm_agent.kernel._scheme_record import StepRecord, fold_steps, step_record
from gm_agent.kernel.state import JobView
from gm_agent.llm import Message, ModelRequest
from gm_agent.schemes import Retry, Step, StepView, render
from gm_agent.skills import skill_dirs
from gm_agent.tools import FileWrite, Reply, ShellCommand, ToolContext

__all__ = [
    "LLM_INSTRUCTIONS",
    "REFUSED_ANSWER",
    "SchemeJobs",
    "StepRetry",
    "check_json",
    "rendered",
    "step_body",
]

LLM_INSTRUCTIONS = (
    "Answer with one JSON value only, matching this JSON Schema, with no other text "
    "and no code fence:\n"
)

REFUSED_ANSWER = (
    "Your answer was refused: {problem}. Answer again with one JSON value only, "
    "matching the JSON Schema, with no other text."
)
"""What an ``llm`` step's model is told before it tries again."""


@dataclass(frozen=True)
class StepRetry(RetryPolicy):
    """A step's ``retry: {attempts, backoff_s, factor}``: wait ``backoff_s`` seconds
    after the first failure, then ``factor`` times longer after each next one
    (no jitter: a scheme's author chose the timing)."""

    backoff_s: float = 0.0
    factor: float = 1.0

    @classmethod
    def of(cls, retry: Retry | None) -> StepRetry:
        """The policy of ``retry`` (one attempt without it)."""
        if retry is None:
            return cls(max_attempts=1)
        return cls(max_attempts=retry.attempts, backoff_s=retry.backoff_s, factor=retry.factor)

    def delay_s(self, attempt: int, retry_after_s: float | None, rng: random.Random) -> float:
        """``backoff_s * factor ** (attempt - 1)`` seconds after failed attempt ``attempt``."""
        return self.backoff_s * self.factor ** (attempt - 1)


class _Failed(JobError):
    """An attempt of a step failed and the step has attempts left."""

    retryable = True


def check_json(value: object, schema: Mapping[str, object]) -> str | None:
    """Why ``value`` does not match ``schema``'s top level, or ``None``.

    A light check, not a JSON Schema validator: the ``type`` (or one of a list of
    them), and for an object its ``required`` keys.
    """
    kind = schema.get("type")
    kinds = cast(list[str], kind) if isinstance(kind, list) else [str(kind)] if kind else []
    actual = _json_type(value)
    fits = actual in kinds or (actual == "integer" and "number" in kinds)
    if kinds and not fits:
        return f"the answer is {actual}, but the schema asks for {' or '.join(kinds)}"
    required = schema.get("required")
    if isinstance(value, dict) and isinstance(required, list):
        keys = cast(dict[str, object], value)
        missing = [str(k) for k in cast(list[object], required) if str(k) not in keys]
        if missing:
            return f"the answer lacks the required key(s) {', '.join(missing)}"
    return None


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _unfenced(text: str) -> str:
    """``text`` without a surrounding Markdown code fence (```json ... ```)."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```"):
        return stripped.split("\n", 1)[-1].rsplit("```", 1)[0].strip()
    return stripped


class SchemeJobs(Steerable):
    """The scheme kernel's part that turns a step's attempt into a job and runs it."""

    _shell_turn: anyio.Lock
    """One shell step at a time in this process (the writer lock serializes processes)."""

    async def records(self) -> dict[str, StepRecord]:
        """Each step's latest record, from the state and the journal.

        Returns:
            By dotted step name (``check.lint`` inside step ``check``; the
            fallback's as ``(fallback)``): its latest :class:`StepRecord`, with the
            whole output of results cut to 4 KiB.
        """
        skipped = await self._journal.read(self._state.run_id, kinds=["scheme.step_skipped"])
        shas = [j.result.output_blob for j in self._state.jobs if j.result and j.result.output_blob]
        blobs = await self._journal.get_blobs(shas)
        outputs = {sha: data.decode("utf-8", "replace") for sha, data in blobs.items()}
        found = [e.data for e in skipped if isinstance(e.data, SchemeStepSkipped)]
        return fold_steps(self._state.run_id, self._state.jobs, found, outputs)

    async def record_of(self, job_id: str, attempt: int) -> StepRecord:
        """The record of the attempt whose job is ``job_id``, as just committed."""
        job = self.job(job_id)
        assert job is not None, f"job {job_id} was never journaled"
        blob = job.result.output_blob if job.result else None
        outputs = (
            {blob: (await self._journal.get_blob(blob)).decode("utf-8", "replace")} if blob else {}
        )
        return step_record(job, attempt, outputs)

    def job(self, job_id: str) -> JobView | None:
        """The run's job ``job_id``, if its intent is journaled."""
        return next((j for j in self._state.jobs if j.job_id == job_id), None)

    def job_spec(
        self,
        step: Step,
        path: str,
        attempt: int,
        key: str,
        params: Mapping[str, object],
        views: Mapping[str, StepView],
    ) -> JobSpec:
        """The job of ``attempt`` of ``step`` (``path`` is its dotted name), its
        templates rendered (for any step but an ``agent`` one; see ``agent_spec``).

        Raises:
            SchemeError: a template cannot be rendered.
        """
        kind, body = step_body(step, params, views)
        args: dict[str, JsonValue] = {"step": path, "attempt": attempt, **body}
        if kind == "shell":
            args["timeout_s"] = step.timeout_s or self._settings.tools.shell_timeout_s
        return JobSpec(
            job_id=self._clock.new_id(),
            key=key,
            kind=kind,
            args=args,
            # A model is asked again; a called scheme serves its recorded steps.
            idempotent=step.idempotent or kind in ("llm", "scheme"),
            timeout_s=step.timeout_s if kind in ("tool", "llm") else None,
        )

    async def run_job(self, spec: JobSpec, retry: StepRetry, *, recorded: bool = False) -> None:
        """Run a ``shell``, ``tool`` or ``llm`` step's job to its ``job.result``
        (``recorded``: its intent is journaled already: an idempotent step cut off
        by a crash, run again).

        A command that cannot start because another process keeps the writer lock
        fails, saying so.
        """
        if spec.kind == "shell":
            async with self._shell_turn:
                _, output = await self._writer().shell(
                    spec, None, intent_committed=recorded, retry=retry
                )
            job = self.job(spec.job_id)
            if job is None or job.status == "started":  # it never started: the lock was taken
                await self.conclude(spec, JobOutcome(ok=False, error=output))
            return
        if spec.kind == "tool":
            effect = _retried(self._tool_effect(spec), retry)
        else:
            effect = self._llm_effect(spec, retry)
        await self.step_runner(retry).run(spec, effect, intent_committed=recorded)

    async def conclude(self, spec: JobSpec, outcome: JobOutcome) -> None:
        """Record ``outcome`` as the result of job ``spec`` without running anything
        (its intent first, unless it is journaled already)."""
        runner = self.step_runner(RetryPolicy(max_attempts=1))
        recorded = self.job(spec.job_id) is not None
        await runner.run(spec, _returning(outcome), intent_committed=recorded)

    def step_runner(self, retry: RetryPolicy) -> JobRunner:
        """A job runner for steps, committing through the kernel with ``retry``."""

        async def emit(datas: Sequence[AnyEventData], blobs: Sequence[bytes]) -> None:
            await self._emit(datas, None, blobs)

        return JobRunner(emit, self._clock, retry=retry)

    def _tool_effect(self, spec: JobSpec) -> Callable[[], Awaitable[JobOutcome]]:
        name = str(spec.args["tool"])
        call_args = cast(dict[str, object], spec.args.get("args") or {})
        redact = self._redactor.redact  # secrets never reach the journal

        async def effect() -> JobOutcome:
            tools = {tool.name: tool for tool in self._registry.select(None)}
            tool = tools.get(name) if name != "finish" else None
            if tool is None:
                return JobOutcome(ok=False, error=f"{name!r} cannot be a scheme step")
            workspace = Path(self._state.workspace)
            skills = tuple(skill_dirs(workspace, self._environ))
            context = ToolContext(workspace, self._settings.tools, skills)
            try:
                outcome = await tool.call(context, dict(call_args))
            except ToolError as exc:
                return JobOutcome(ok=False, output=redact(str(exc)), error=str(exc))
            if isinstance(outcome, Reply):
                output = redact(outcome.output)
                return JobOutcome(ok=outcome.ok, output=output, error=_error(outcome.ok, output))
            if isinstance(outcome, FileWrite):
                ok, output = await self._writer().write(outcome, spec.job_id, None)
                return JobOutcome(ok=ok, output=output, error=_error(ok, output))
            what = "runs a command: use a shell step" if isinstance(outcome, ShellCommand) else ""
            return JobOutcome(
                ok=False, error=f"tool {name!r} {what or 'cannot run as a scheme step'}"
            )

        return effect

    def _llm_effect(self, spec: JobSpec, retry: StepRetry) -> Callable[[], Awaitable[JobOutcome]]:
        """One model request a call. Every answer is journaled (``model.response``,
        with its tokens); a refused one, with attempts left, raises after telling
        the model why, and the next request has its own idempotency key."""
        schema = cast(dict[str, object], spec.args["schema"])
        assert self._models is not None
        model = self._models.get(self._state.model)
        system = LLM_INSTRUCTIONS + json.dumps(schema, ensure_ascii=False)
        messages = [
            Message(role="system", text=system),
            Message(role="user", text=str(spec.args["prompt"])),
        ]
        tries = [0]

        async def effect() -> JobOutcome:
            tries[0] += 1
            key = spec.key if tries[0] == 1 else f"{spec.key}/try-{tries[0]}"
            request = ModelRequest(messages=tuple(messages), idempotency_key=key)
            started = self._clock.monotonic()
            move = await model.request(request, self._notify)
            response = ModelResponse(
                job_id=spec.job_id,
                model=move.model or model.name,
                text=move.text,
                usage=move.usage,
                finish_reason=move.finish_reason,
                duration_ms=round((self._clock.monotonic() - started) * 1000),
            )
            await self._emit([response])
            text = _unfenced(move.text)
            try:
                problem = check_json(json.loads(text), schema)
            except ValueError as exc:
                problem = f"the answer is not JSON ({exc})"
            if problem is not None and tries[0] < retry.max_attempts:
                messages.append(Message(role="assistant", text=move.text))
                messages.append(Message(role="user", text=REFUSED_ANSWER.format(problem=problem)))
                raise _Failed(problem)
            output = text if problem is None else move.text
            return JobOutcome(ok=problem is None, output=output, error=problem)

        return effect


def _error(ok: bool, output: str) -> str | None:
    """A failed tool's error: the start of its output."""
    return None if ok else output[:200]


def _returning(outcome: JobOutcome) -> Callable[[], Awaitable[JobOutcome]]:
    """An effect that does nothing but return ``outcome``."""

    async def effect() -> JobOutcome:
        return outcome

    return effect


def _retried(
    effect: Callable[[], Awaitable[JobOutcome]], retry: StepRetry
) -> Callable[[], Awaitable[JobOutcome]]:
    """``effect``, raising a retryable error on failure while attempts are left."""
    tries = [0]

    async def attempt() -> JobOutcome:
        outcome = await effect()
        tries[0] += 1
        if not outcome.ok and tries[0] < retry.max_attempts:
            raise _Failed(outcome.error or "failed")
        return outcome

    return attempt


def rendered(
    value: object,
    step: Step,
    params: Mapping[str, object],
    views: Mapping[str, StepView],
    key: str = "tool.args",
) -> object:
    """``value`` (a ``tool.args`` or ``scheme.params`` tree) with each string
    rendered as a template (``key`` names the step's key in errors)."""
    if isinstance(value, str):
        return render(value, params, views, step=step, key=key)
    if isinstance(value, dict):
        items = cast(dict[str, object], value).items()
        return {k: rendered(v, step, params, views, key) for k, v in items}
    if isinstance(value, list):
        return [rendered(v, step, params, views, key) for v in cast(list[object], value)]
    return value


def step_body(
    step: Step, params: Mapping[str, object], views: Mapping[str, StepView]
) -> tuple[str, dict[str, JsonValue]]:
    """The kind of ``step``'s job and what its ``args`` hold of the step itself,
    templates rendered: ``command`` (shell); ``tool`` and ``args`` (tool);
    ``prompt`` and ``schema`` (llm); ``task`` (agent); ``scheme`` and ``params``
    (scheme). ``gm replay --recorded`` compares them with the journal's.

    Raises:
        SchemeError: a template cannot be rendered.
    """
    if step.shell is not None or (step.tool is not None and step.tool.name == "run_shell"):
        command = step.shell or str((step.tool.args if step.tool else {}).get("command", ""))
        return "shell", {"command": render(command, params, views, step=step, key="shell")}
    if step.tool is not None:
        args = cast(JsonValue, rendered(step.tool.args, step, params, views))
        return "tool", {"tool": step.tool.name, "args": args}
    if step.llm is not None:
        prompt = render(step.llm.prompt, params, views, step=step, key="llm.prompt")
        return "llm", {"prompt": prompt, "schema": step.llm.output_schema}
    if step.agent is not None:
        return "agent", {
            "task": render(step.agent.task, params, views, step=step, key="agent.task")
        }
    assert step.scheme is not None
    given = cast(JsonValue, rendered(step.scheme.params, step, params, views, "scheme.params"))
    return "scheme", {"scheme": step.scheme.name, "params": given}
