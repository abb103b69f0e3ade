"""The internal conversation format every provider maps to and from."""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from gm_agent.events import TokenUsage, ToolCallData


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


class ModelRequest(_Frozen):
    """What the kernel asks a model: the conversation so far and the tools it may call.

    ``idempotency_key`` is the request job's key; providers that accept one send it
    (as an ``Idempotency-Key`` HTTP header) so a retried request is recognised.
    """

    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    idempotency_key: str | None = None


class Move(_Frozen):
    """The model's move for one turn: text and/or tool calls, with token usage.

    ``model`` is the model name the provider reports (it may be more specific
    than the one asked for); ``finish_reason`` is the provider's own word.
    """

    text: str = ""
    tool_calls: tuple[ToolCallData, ...] = ()
    usage: TokenUsage = TokenUsage()
    finish_reason: str | None = None
    model: str | None = None


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

    ``name`` is the ``provider:model`` string it was made from. :meth:`request`
    returns the next move; it raises :class:`~gm_agent.errors.ModelError` (or its
    subclass ``ModelHTTPError``) when no move can be had. :meth:`aclose` releases
    connections or loaded weights.
    """

    name: str

    async def request(self, request: ModelRequest) -> Move:
        """Ask for the next move. Raises ``ModelError``."""
        ...

    async def aclose(self) -> None:
        """Release what the model holds."""
        ...
