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
"""

from __future__ import annotations

import json

from gm_agent.events import ContextCompacted
from gm_agent.kernel.context import build_request
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


def estimate_tokens(request: ModelRequest) -> int:
    """An upper-leaning estimate of ``request``'s size in tokens: its messages' text,
    tool calls, provider data and tool schemas at :data:`CHARS_PER_TOKEN`, plus a
    few per message."""
    chars = 0
    for message in request.messages:
        chars += len(message.text)
        for call in message.tool_calls:
            chars += len(call.name) + len(json.dumps(call.args, ensure_ascii=False))
        if message.provider_data:  # sent back as it came (thinking blocks, signatures)
            chars += len(json.dumps(message.provider_data, ensure_ascii=False))
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description) + len(json.dumps(tool.parameters))
    return int(chars / CHARS_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS * len(request.messages)


def _size(state: RunState, tools: tuple[ToolSpec, ...], marks: tuple[int, int]) -> int:
    truncated, dropped = marks
    trial = state.model_copy(update={"truncated_before": truncated, "dropped_before": dropped})
    return estimate_tokens(build_request(trial, tools))


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
) -> ContextCompacted | None:
    """The ``context.compacted`` the next request needs, or ``None`` when it fits.

    Args:
        state: the run at a safe point, before its next model request.
        tools: the tools the request offers (their schemas count too).
        window_tokens: the model's context window in tokens.
        compact_at: compact once the estimate passes this share of the window.

    Returns ``None`` too when nothing is left to compact; the request then goes
    as it is and the provider says if it is too long.
    """
    before = _size(state, tools, (state.truncated_before, state.dropped_before))
    if before <= window_tokens * compact_at:
        return None
    candidates = _candidates(state)
    if not candidates:
        return None
    target = window_tokens * TARGET_SHARE
    low, high = 0, len(candidates) - 1  # sizes shrink along the list: bisect for the first fit
    while low < high:
        middle = (low + high) // 2
        if _size(state, tools, candidates[middle]) <= target:
            high = middle
        else:
            low = middle + 1
    truncated, dropped = candidates[low]
    return ContextCompacted(
        truncated_before=truncated,
        dropped_before=dropped,
        tokens_before=before,
        tokens_after=_size(state, tools, candidates[low]),
        window_tokens=window_tokens,
    )
