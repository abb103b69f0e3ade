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
    """What the kernel asks a model: the conversation so far and the tools it may call."""

    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()


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
