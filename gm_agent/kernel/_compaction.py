"""When the conversation nears the model's context window, send older parts in short.

Before each model request the kernel estimates the request's size. Past
``compact_at`` of the window it picks the least compaction that brings the
request to half the window, trying in order:

1. cut the tool outputs (and long arguments) of all but the last
   :data:`KEEP_STEPS` steps to their head and tail;
2. leave out the oldest steps, one more at a time, down to the last one;
3. cut the last steps' outputs too.

The choice is journaled as ``context.compacted`` and applied by
:func:`~gm_agent.kernel.context.build_request`; the journal keeps every turn
whole. The estimate is deliberately high (:data:`CHARS_PER_TOKEN`), since a
request over the window fails while one under it only compacts a little early.

The estimate is taken from the run's :class:`~gm_agent.kernel.context.Messages`
(each turn's size, kept as the conversation grows), so checking it before each
request costs what the new turns hold, not the whole conversation; it is the
same figure :func:`estimate_tokens` gives for the request itself.
"""

from __future__ import annotations

from gm_agent.events import ContextCompacted
from gm_agent.kernel.context import Messages, message_chars, tool_chars
from gm_agent.kernel.state import RunState
from gm_agent.llm import ModelRequest, ToolSpec

__all__ = [
    "CHARS_PER_TOKEN",
    "DEFAULT_WINDOW_TOKENS",
    "KEEP_STEPS",
    "estimate_tokens",
    "plan_compaction",
]

CHARS_PER_TOKEN = 3.0
"""Characters per token in the estimate. BPE tokenizers average about 4 for
English prose (OpenAI's tokenizer guide) and fewer for code and JSON; 3 errs high."""

MESSAGE_OVERHEAD_TOKENS = 4
"""Tokens a chat template adds around each message (role markers, separators)."""

DEFAULT_WINDOW_TOKENS = 32_768
"""The window assumed for a model that states none (an unknown OpenAI-compatible
server); set ``[context] window_tokens`` for the real figure."""

KEEP_STEPS = 2
"""Steps at the end of the conversation whose outputs are kept whole while possible."""

TARGET_SHARE = 0.5
"""Compaction aims at this share of the window, so it does not recur every step."""


def _tokens(chars: int, messages: int) -> int:
    return int(chars / CHARS_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS * messages


def estimate_tokens(request: ModelRequest) -> int:
    """An upper-leaning estimate of ``request``'s size in tokens: its messages' text,
    tool calls, provider data and tool schemas at :data:`CHARS_PER_TOKEN`, plus a
    few per message."""
    chars = sum(message_chars(m) for m in request.messages)
    chars += sum(tool_chars(t) for t in request.tools)
    return _tokens(chars, len(request.messages))


class _Sizer:
    """:func:`estimate_tokens` of the request a state would make with other marks."""

    def __init__(self, state: RunState, tools: tuple[ToolSpec, ...], messages: Messages) -> None:
        self._state = state
        self._tools_chars = messages.tools_chars(tools)
        self._messages = messages

    def __call__(self, marks: tuple[int, int]) -> int:
        chars, count = self._messages.size(self._state, marks)
        return _tokens(chars + self._tools_chars, count)


def _candidates(state: RunState) -> list[tuple[int, int]]:
    """(truncated_before, dropped_before) pairs from least to most compact, none
    below the state's current marks."""
    starts = [i for i, t in enumerate(state.conversation) if t.role == "assistant"]
    now_t, now_d = state.truncated_before, state.dropped_before
    if not starts:
        return []
    keep_from = starts[-KEEP_STEPS] if len(starts) >= KEEP_STEPS else starts[0]
    truncate = max(now_t, keep_from)
    found = [(truncate, now_d)]
    for start in starts[1:]:  # drop steps before `start`; the last step always stays
        if start > now_d:
            found.append((max(truncate, start), start))
    found.append((len(state.conversation), found[-1][1]))
    return [marks for marks in found if marks != (now_t, now_d)]


def plan_compaction(
    state: RunState,
    tools: tuple[ToolSpec, ...],
    window_tokens: int,
    compact_at: float = 0.8,
    messages: Messages | None = None,
) -> ContextCompacted | None:
    """The ``context.compacted`` the next request needs, or ``None`` when it fits.

    Args:
        state: the run at a safe point, before its next model request.
        tools: the tools the request offers (their schemas count too).
        window_tokens: the model's context window in tokens.
        compact_at: compact once the estimate passes this share of the window.
        messages: the run's message cache (the kernel's); the answer is the
            same without it, only slower for a long conversation.

    Returns ``None`` too when nothing is left to compact; the request then goes
    as it is and the provider says if it is too long.
    """
    size = _Sizer(state, tools, messages or Messages())
    before = size((state.truncated_before, state.dropped_before))
    if before <= window_tokens * compact_at:
        return None
    candidates = _candidates(state)
    if not candidates:
        return None
    target = window_tokens * TARGET_SHARE
    low, high = 0, len(candidates) - 1  # sizes shrink along the list: bisect for the first fit
    while low < high:
        middle = (low + high) // 2
        if size(candidates[middle]) <= target:
            high = middle
        else:
            low = middle + 1
    truncated, dropped = candidates[low]
    return ContextCompacted(
        truncated_before=truncated,
        dropped_before=dropped,
        tokens_before=before,
        tokens_after=size(candidates[low]),
        window_tokens=window_tokens,
    )
