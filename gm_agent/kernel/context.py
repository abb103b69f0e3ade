"""What the model sees: the system prompt and the conversation, built from the state.

The system prompt is gm's own instructions, then the project context files
(``context.loaded``), then the task's ``instructions:`` (the most specific, so
last). The conversation is the run's, shortened where ``context.compacted`` says:
older tool outputs cut to their head and tail, the oldest steps replaced by a
note. The request is a pure function of the state, so a resumed or replayed run
asks exactly what the first process asked.

A kernel keeps one :class:`Messages` for its run: each turn's message is made
once (whole and cut short), with its size, so building the request and
estimating its size (:mod:`~gm_agent.kernel._compaction`) cost what the new
turns hold, not the whole conversation.
"""

from __future__ import annotations

import json

from gm_agent.events import ToolCallData
from gm_agent.kernel.state import RunState, Turn
from gm_agent.llm import Message, ModelRequest, ToolSpec

__all__ = [
    "KEEP_CHARS",
    "SYSTEM_PROMPT",
    "Messages",
    "build_request",
    "message_chars",
    "shorten",
    "tool_chars",
]

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


def message_chars(message: Message) -> int:
    """The characters ``message`` carries to the model: its text, each tool call's
    name and JSON arguments, and its provider data (sent back as it came)."""
    chars = len(message.text)
    for call in message.tool_calls:
        chars += len(call.name) + len(json.dumps(call.args, ensure_ascii=False))
    if message.provider_data:
        chars += len(json.dumps(message.provider_data, ensure_ascii=False))
    return chars


def tool_chars(tool: ToolSpec) -> int:
    """The characters ``tool``'s offer carries to the model: name, description and
    JSON Schema."""
    return len(tool.name) + len(tool.description) + len(json.dumps(tool.parameters))


class Messages:
    """The messages of one run's conversation, each made once: whole, and cut short
    (for turns before ``truncated_before``), with prefix sums of their sizes.

    A run's conversation only grows: a state folded or evolved from another holds
    the other's turns (the very same objects), then new ones. So the messages are
    kept while the state's turn at the last known position is the one seen there,
    and only turns after it are made; a state from elsewhere (folded again from
    the journal) starts the cache over. Either way the result is what
    :func:`build_request` makes without a cache.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._turns: list[Turn] = []
        self._whole: list[Message] = []
        self._short: list[Message] = []
        self._whole_sum: list[int] = [0]  # [i]: chars of the whole messages before turn i
        self._short_sum: list[int] = [0]
        self._first: int | None = None  # the first assistant turn
        self._system: tuple[tuple[str, str | None, str | None], Message] | None = None
        self._note: tuple[tuple[int, int, tuple[str, ...]], Message] | None = None
        self._tools: dict[int, tuple[ToolSpec, int]] = {}  # tool_chars by spec object

    def _sync(self, conversation: tuple[Turn, ...]) -> None:
        known = len(self._turns)
        if known and (len(conversation) < known or conversation[known - 1] is not self._turns[-1]):
            self._reset()  # not a later state of the same lineage
        for index in range(len(self._turns), len(conversation)):
            turn = conversation[index]
            whole, short = _message(turn, short=False), _message(turn, short=True)
            self._turns.append(turn)
            self._whole.append(whole)
            self._short.append(short)
            self._whole_sum.append(self._whole_sum[-1] + message_chars(whole))
            self._short_sum.append(self._short_sum[-1] + message_chars(short))
            if self._first is None and turn.role == "assistant":
                self._first = index

    def _layout(self, state: RunState, marks: tuple[int, int]) -> tuple[int, int]:
        """``(first, drop_end)``: turns ``first <= i < drop_end`` are left out for a
        note (``marks`` being ``(truncated_before, dropped_before)``)."""
        self._sync(state.conversation)
        first = self._first or 0
        return first, min(max(first, marks[1]), len(self._turns))

    def _system_message(self, state: RunState) -> Message:
        key = (state.workspace, state.project_context, state.instructions)
        if self._system is None or self._system[0] != key:
            self._system = (key, Message(role="system", text=system_prompt(state)))
        return self._system[1]

    def _note_message(self, state: RunState, first: int, drop_end: int) -> Message:
        key = (first, drop_end, state.changed_files)
        if self._note is None or self._note[0] != key:
            text = _dropped_note(state, list(state.conversation[first:drop_end]))
            self._note = (key, Message(role="user", text=text))
        return self._note[1]

    def messages(self, state: RunState) -> tuple[Message, ...]:
        """The request's messages for ``state``, compacted as its marks say."""
        truncated = state.truncated_before
        first, drop_end = self._layout(state, (truncated, state.dropped_before))
        end = len(self._turns)
        messages = [self._system_message(state)]
        cut = max(0, min(first, truncated))  # turns before `cut` go cut short
        messages += self._short[:cut] + self._whole[cut:first]
        if first < drop_end:
            messages.append(self._note_message(state, first, drop_end))
        cut = max(drop_end, min(end, truncated))
        messages += self._short[drop_end:cut] + self._whole[cut:end]
        return tuple(messages)

    def tools_chars(self, tools: tuple[ToolSpec, ...]) -> int:
        """:func:`tool_chars` summed over ``tools``, each spec (an immutable object a
        tool keeps) measured once."""
        total = 0
        for tool in tools:
            known = self._tools.get(id(tool))
            if known is None or known[0] is not tool:
                known = self._tools[id(tool)] = (tool, tool_chars(tool))
            total += known[1]
        return total

    def size(self, state: RunState, marks: tuple[int, int]) -> tuple[int, int]:
        """``(characters, messages)`` of the request ``state`` would make with
        ``marks`` (``truncated_before``, ``dropped_before``) instead of its own:
        what :func:`message_chars` sums to over those messages, without making them."""
        truncated = marks[0]
        first, drop_end = self._layout(state, marks)
        end = len(self._turns)
        chars, count = message_chars(self._system_message(state)), 1
        for start, stop in ((0, first), (drop_end, end)):
            cut = max(start, min(stop, truncated))
            chars += self._short_sum[cut] - self._short_sum[start]
            chars += self._whole_sum[stop] - self._whole_sum[cut]
            count += stop - start
        if first < drop_end:
            chars += message_chars(self._note_message(state, first, drop_end))
            count += 1
        return chars, count


def build_request(
    state: RunState,
    tools: tuple[ToolSpec, ...],
    *,
    idempotency_key: str | None = None,
    messages: Messages | None = None,
) -> ModelRequest:
    """The model request for the next step of the run in ``state``, compacted as
    the state's ``truncated_before`` and ``dropped_before`` say.

    ``messages``: the run's message cache (see :class:`Messages`); the request is
    the same with or without it.
    """
    return ModelRequest(
        messages=(messages or Messages()).messages(state),
        tools=tools,
        idempotency_key=idempotency_key,
        step=state.step + 1,
    )
