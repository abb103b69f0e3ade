"""The internal conversation format every provider maps to and from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, JsonValue

from gm_agent.events import TokenUsage, ToolCallData
from gm_agent.llm.prices import Pricing


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ToolSpec(_Frozen):
    """A tool as the model sees it: name, description and a JSON Schema for its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


class Message(_Frozen):
    """One conversation message.

    ``system`` and ``user`` carry ``text``; ``assistant`` carries ``text`` and/or
    ``tool_calls``; ``tool`` carries the result ``text`` of the call ``call_id``
    to tool ``name``.
    """

    role: Literal["system", "user", "assistant", "tool"]
    text: str = ""
    tool_calls: tuple[ToolCallData, ...] = ()
    call_id: str | None = None
    name: str | None = None
    provider_data: dict[str, JsonValue] | None = None
    """An assistant message's :attr:`Move.provider_data`, to send back as it came."""


class ModelRequest(_Frozen):
    """What the kernel asks a model: the conversation so far and the tools it may call.

    ``idempotency_key`` is the request job's key; providers that accept one send it
    (as an ``Idempotency-Key`` HTTP header) so a retried request is recognised.
    ``step`` is the 1-based step the request is for (test doubles pick their move
    by it, since a compacted conversation no longer shows every earlier turn).
    """

    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    idempotency_key: str | None = None
    step: int | None = None


class Move(_Frozen):
    """The model's move for one turn: text and/or tool calls, with token usage.

    ``model`` is the model name the provider reports (it may be more specific
    than the one asked for); ``finish_reason`` is the provider's own word.
    ``provider_data`` is what the provider needs back on later turns and gm never
    reads, keyed by provider (``{"anthropic": {"content": [thinking blocks with
    their signatures]}}``, ``{"gemini": {"parts": [...thought signatures...]}}``):
    journaled with the response, returned in the assistant message.
    """

    text: str = ""
    tool_calls: tuple[ToolCallData, ...] = ()
    usage: TokenUsage = TokenUsage()
    finish_reason: str | None = None
    model: str | None = None
    provider_data: dict[str, JsonValue] | None = None


class Delta(_Frozen):
    """A piece of a move while it streams, for live watchers (never journaled).

    ``text``: assistant text to append. ``call_index`` (0-based), ``call_name``
    and ``args_fragment``: a piece of tool call ``call_index``'s JSON arguments
    (the name comes with its first piece). ``thinking``: reasoning text, where the
    provider shows it.
    """

    text: str = ""
    thinking: str = ""
    call_index: int | None = None
    call_name: str | None = None
    args_fragment: str = ""


OnDelta = Callable[[Delta], None]
"""Where a streaming model sends each :class:`Delta` (it must not block)."""


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    return value


def clean_move(move: Move) -> Move:
    """``move`` with lone surrogates (which UTF-8 cannot store) replaced by ``?``.

    Providers may send ``\\ud83d`` escapes without their pair; the journal stores
    UTF-8, so text is cleaned where it enters, once.
    """
    return Move.model_validate(_clean(move.model_dump()))


class Model(Protocol):
    """A language model provider.

    ``name`` is the ``provider:model`` string it was made from; ``pricing`` which
    price table its usage is costed with (:mod:`gm_agent.llm.prices`);
    ``context_window`` its context window in tokens when the model itself knows it
    (the local model's ``n_ctx``), else ``None``. :meth:`request`
    returns the next move; it raises :class:`~gm_agent.errors.ModelError` (or its
    subclass ``ModelHTTPError``) when no move can be had. :meth:`aclose` releases
    connections or loaded weights.
    """

    name: str
    pricing: Pricing
    context_window: int | None

    async def request(self, request: ModelRequest, on_delta: OnDelta | None = None) -> Move:
        """Ask for the next move; a model that streams sends pieces to ``on_delta``
        as they arrive. Raises ``ModelError``. Cancelling it stops the stream."""
        ...

    async def aclose(self) -> None:
        """Release what the model holds."""
        ...
