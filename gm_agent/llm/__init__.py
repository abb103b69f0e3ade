"""Language models: one protocol, one module per provider, and test doubles.

A :class:`Model` turns a :class:`ModelRequest` (conversation and tools) into a
:class:`Move` (text and/or tool calls, with token usage). :func:`make_model`
builds one from its name; see ``docs/models.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gm_agent.llm._breaker import CircuitBreaker, Guarded, ModelPool
from gm_agent.llm._messages import Delta, Message, Model, ModelRequest, Move, OnDelta, ToolSpec
from gm_agent.llm._routing import DEFAULT_LOCAL_MODEL, default_model_name, make_model
from gm_agent.llm.local import LocalModel, local_model_available
from gm_agent.llm.scripted import FunctionModel, ScriptedModel

if TYPE_CHECKING:
    from gm_agent.llm.openai import OpenAIChatModel

__all__ = [
    "DEFAULT_LOCAL_MODEL",
    "CircuitBreaker",
    "Delta",
    "FunctionModel",
    "Guarded",
    "LocalModel",
    "Message",
    "Model",
    "ModelPool",
    "ModelRequest",
    "Move",
    "OnDelta",
    "OpenAIChatModel",
    "ScriptedModel",
    "ToolSpec",
    "default_model_name",
    "local_model_available",
    "make_model",
]


def __getattr__(name: str) -> object:
    """The HTTP providers import httpx (tens of ms), so they are imported when first
    used: a run with a local or scripted model never imports them."""
    if name == "OpenAIChatModel":
        from gm_agent.llm.openai import OpenAIChatModel

        return OpenAIChatModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
