"""``gm export``: a run as a readable Markdown transcript (the JSON-lines form is ``gm log --json``)."""

from __future__ import annotations

import json
from collections.abc import Iterable

from gm_agent.events import (
    Event,
    JobAmbiguous,
    ModelResponse,
    PatchApplied,
    PatchReverted,
    RunCreated,
    RunFinished,
    RunForked,
    ToolReturned,
    UserMessage,
)

FENCE = "````"  # four backticks: outputs may hold ``` themselves


def markdown_transcript(events: Iterable[Event]) -> str:
    """The run as Markdown: the task, each step's text and tool calls, results folded in
    ``<details>``, file changes, and how it ended."""
    events = list(events)
    run_id = events[-1].run_id if events else ""  # a fork's history starts with its parent's
    lines: list[str] = []
    step = 0
    for event in events:
        data = event.data
        match data:
            case RunCreated():
                lines += [
                    f"# Run {run_id}",
                    "",
                    f"- model: `{data.model}`",
                    f"- workspace: `{data.workspace}`",
                    f"- started: {event.at}",
                    "",
                ]
            case RunForked():
                lines += [
                    "## Fork",
                    "",
                    f"Run {event.run_id} goes on from run {data.parent_id} after seq "
                    f"{data.fork_seq}, with model `{data.model}`.",
                    "",
                ]
            case UserMessage():
                lines += ["## User", "", data.text, ""]
            case ModelResponse():
                step += 1
                lines += [f"## Step {step}", ""]
                if data.text.strip():
                    lines += [data.text.strip(), ""]
                for call in data.tool_calls:
                    args = json.dumps(call.args, indent=2, ensure_ascii=False)
                    lines += [
                        f"**{call.name}** `{call.call_id}`",
                        "",
                        f"{FENCE}json",
                        args,
                        FENCE,
                        "",
                    ]
            case ToolReturned():
                mark = "ok" if data.ok else "error"
                lines += [
                    f"<details><summary>{data.name} → {mark} ({len(data.output)} chars)</summary>",
                    "",
                    FENCE,
                    data.output,
                    FENCE,
                    "",
                    "</details>",
                    "",
                ]
            case PatchApplied() | PatchReverted():
                verb = "changed" if isinstance(data, PatchApplied) else "reverted"
                files = ", ".join(f"`{f.path}` ({f.op})" for f in data.files)
                lines += [f"*Files {verb}:* {files}", ""]
            case JobAmbiguous():
                lines += [f"*Outcome unknown:* {data.message}", ""]
            case RunFinished():
                detail = data.summary if data.status == "succeeded" else data.error
                lines += [f"## {data.status.capitalize()}", "", detail or "", ""]
            case _:
                pass
    return "\n".join(lines).rstrip() + "\n"
