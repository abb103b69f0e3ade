"""What the model sees: the system prompt and the conversation, built from the state.

The system prompt is gm's own instructions, then the project context files
(``context.loaded``), then the task's ``instructions:`` (the most specific, so
last). The conversation is the run's, shortened where ``context.compacted`` says:
older tool outputs cut to their head and tail, the oldest steps replaced by a
note. The request is a pure function of the state, so a resumed or replayed run
asks exactly what the first process asked.
"""

from __future__ import annotations

from gm_agent.events import ToolCallData
from gm_agent.kernel.state import RunState, Turn
from gm_agent.llm import Message, ModelRequest, ToolSpec

__all__ = ["KEEP_CHARS", "SYSTEM_PROMPT", "build_request", "shorten"]

SYSTEM_PROMPT = """\
You are gm, an autonomous agent working in a project directory ({workspace}).
Do the user's task using the tools. Paths are relative to the project directory.
Check your work (read the file back, run the tests) when that is useful.
When the task is done, call `finish` with a short summary of what you did."""

KEEP_CHARS = 1000
"""How much of a compacted tool output (or long argument) the model still sees:
the first 600 and the last 400 characters."""


def shorten(text: str, keep: int = KEEP_CHARS) -> str:
    """``text`` cut to its head and tail (about ``keep`` characters) with a marker
    saying how much was left out; unchanged when it is short already."""
    if len(text) <= keep + 200:  # the marker must save more than it costs
        return text
    head, tail = keep * 3 // 5, keep * 2 // 5
    omitted = len(text) - head - tail
    return (
        f"{text[:head]}\n[... {omitted:,} characters compacted by gm to fit the context "
        f"window; the whole text is in the journal ...]\n{text[-tail:]}"
    )


def _shorten_call(call: ToolCallData) -> ToolCallData:
    args = {k: shorten(v) if isinstance(v, str) else v for k, v in call.args.items()}
    return call if args == call.args else call.model_copy(update={"args": args})


def _dropped_note(state: RunState, dropped: list[Turn]) -> str:
    steps = sum(1 for t in dropped if t.role == "assistant")
    note = (
        f"[gm: the first {steps} steps of this run were left out to fit the context "
        "window; their record is in the journal."
    )
    if state.changed_files:
        shown = ", ".join(state.changed_files[:20])
        more = f" and {len(state.changed_files) - 20} more" if len(state.changed_files) > 20 else ""
        note += f" Files changed so far: {shown}{more}."
    said = [t.text for t in dropped if t.role == "user" and t.text]
    if said:
        note += " Messages from the user in that part, in order:\n" + "\n".join(
            f"- {shorten(text)}" for text in said
        )
    return note + "]"


def _message(turn: Turn, short: bool) -> Message:
    match turn.role:
        case "user":
            return Message(role="user", text=turn.text)
        case "assistant":
            calls = tuple(_shorten_call(c) for c in turn.tool_calls) if short else turn.tool_calls
            return Message(
                role="assistant",
                text=shorten(turn.text) if short else turn.text,
                tool_calls=calls,
                provider_data=turn.provider_data,
            )
        case "tool":
            text = shorten(turn.text) if short else turn.text
            return Message(role="tool", text=text, call_id=turn.call_id, name=turn.name)


def system_prompt(state: RunState) -> str:
    """gm's instructions, the project context, then the task's instructions."""
    parts = [SYSTEM_PROMPT.format(workspace=state.workspace)]
    if state.project_context:
        parts.append(state.project_context)
    if state.instructions:
        parts.append(state.instructions)
    return "\n\n".join(parts)


def build_request(
    state: RunState, tools: tuple[ToolSpec, ...], *, idempotency_key: str | None = None
) -> ModelRequest:
    """The model request for the next step of the run in ``state``, compacted as
    the state's ``truncated_before`` and ``dropped_before`` say."""
    messages = [Message(role="system", text=system_prompt(state))]
    conversation = state.conversation
    first = next((i for i, t in enumerate(conversation) if t.role == "assistant"), 0)
    drop_end = max(first, state.dropped_before)
    for index, turn in enumerate(conversation):
        if first <= index < drop_end:
            if index == first:
                dropped = list(conversation[first:drop_end])
                messages.append(Message(role="user", text=_dropped_note(state, dropped)))
            continue
        messages.append(_message(turn, short=index < state.truncated_before))
    return ModelRequest(
        messages=tuple(messages),
        tools=tools,
        idempotency_key=idempotency_key,
        step=state.step + 1,
    )
