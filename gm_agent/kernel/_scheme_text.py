"""What a scheme run says in words: its task line, its summary, why it is blocked,
and the handover to a fallback agent."""

from __future__ import annotations

import json
from collections.abc import Mapping

from gm_agent.kernel._scheme_record import SchemeRecord, StepRecord
from gm_agent.schemes import Step

__all__ = ["blocked_reason", "handover", "scheme_summary", "scheme_task", "tail"]

OUTPUT_CHARS = 1500
"""Most characters of one step's output a handover shows (its tail)."""

REASON_CHARS = 300
"""Most characters of a step's error, and of its output, that a blocked run's reason shows."""


def tail(text: str, chars: int = OUTPUT_CHARS) -> str:
    """The last ``chars`` characters of ``text`` (stripped), marked when cut."""
    text = text.strip()
    return text if len(text) <= chars else f"[... {len(text) - chars} chars cut]\n{text[-chars:]}"


def scheme_task(record: SchemeRecord) -> str:
    """A scheme run's one-line task: ``scheme NAME key=value ...`` (values as JSON)."""
    params = " ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in record.params.items())
    return f"scheme {record.scheme.name}" + (f" {params}" if params else "")


def scheme_summary(record: SchemeRecord, steps: Mapping[str, StepRecord]) -> str:
    """``scheme NAME: 3 steps succeeded, 1 skipped, 1 failed (on_error: continue)``,
    then the last step's output, cut."""
    count = {"ok": 0, "skipped": 0, "failed": 0}
    for record_ in steps.values():
        count[
            "ok" if record_.status == "ok" else "skipped" if record_.view.skipped else "failed"
        ] += 1
    line = f"scheme {record.scheme.name}: {count['ok']} steps succeeded, {count['skipped']} skipped"
    if count["failed"]:
        line += f", {count['failed']} failed (on_error: continue)"
    last = next(
        (s.name for s in reversed(record.scheme.steps) if s.name in steps and steps[s.name].job),
        None,
    )
    if last is not None and steps[last].view.output.strip():
        line += f"\n{last}: {tail(steps[last].view.output, 500)}"
    return line


def blocked_reason(run_id: str, path: str, step: StepRecord) -> str:
    """Why a run stopped at a ``blocked`` step, and how to go on: the step's error
    and the tail of its output (each cut to :data:`REASON_CHARS`; the output only
    when it says more than the error)."""
    again = f"`gm resume {run_id}` runs the step again"
    if step.status == "unknown":
        return f"step {path!r}: {_cut(step.view.output)}; then {again}"
    error = step.job.result.error if step.job and step.job.result else None
    error = _cut(error or "no reason given")
    output = step.view.output.strip()
    said = f": {tail(output, REASON_CHARS)}" if output and output not in error else ""
    return f"step {path!r} failed ({error}){said}; fix the cause, then {again}"


def _cut(text: str, chars: int = REASON_CHARS) -> str:
    """``text`` (stripped) cut to its first ``chars`` characters, marked when cut."""
    text = text.strip()
    return text if len(text) <= chars else f"{text[:chars]} [...]"


def _body(step: Step) -> str:
    if step.shell is not None:
        return f"shell: {step.shell.strip()}"
    if step.agent is not None:
        return f"agent: {step.agent.task.strip()}"
    if step.llm is not None:
        return f"llm: {step.llm.prompt.strip()}"
    if step.tool is not None:
        return f"tool: {step.tool.name}({json.dumps(step.tool.args)})"
    assert step.scheme is not None
    return f"scheme: {step.scheme.name}({json.dumps(step.scheme.params)})"


def handover(record: SchemeRecord, steps: Mapping[str, StepRecord], failed: str) -> str:
    """The task of the fallback agent: what the scheme was doing, what succeeded
    (outputs cut), what failed and why, and what remains."""
    scheme = record.scheme
    lines = [
        f"You take over the scheme {scheme.name!r} ({scheme.description}), a fixed "
        f"procedure that could not go on: its step {failed!r} failed and says to hand the "
        "rest to you. Finish what the scheme was meant to do, then call finish with a summary.",
        f"Parameters: {json.dumps(record.params, ensure_ascii=False)}",
        "",
    ]
    for step in scheme.steps:
        found = steps.get(step.name)
        if found is None:
            lines.append(f"- {step.name}: NOT RUN YET (remains to do). {_body(step)}")
        elif found.status == "ok":
            lines.append(f"- {step.name}: succeeded. Output:\n{tail(found.view.output)}")
        elif found.view.skipped:
            lines.append(f"- {step.name}: skipped ({found.reason})")
        else:
            error = found.job.result.error if found.job and found.job.result else None
            lines.append(
                f"- {step.name}: FAILED ({error or found.view.output[:200]}). {_body(step)}\n"
                f"Output:\n{tail(found.view.output)}"
            )
    return "\n".join(lines)
