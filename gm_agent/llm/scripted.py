"""Test doubles that implement :class:`~gm_agent.llm.Model` exactly.

``scripted:PATH`` plays a YAML file of moves, one item per model turn::

    - text: "optional assistant text"
      tool_calls:
        - {name: write_file, args: {path: hello.txt, content: "hello\\n"}}
    - finish: "summary of what was done"

``finish: TEXT`` is shorthand for a call to the ``finish`` tool. The move played
is chosen by how many assistant turns the conversation already holds, so a
resumed or replayed run gets the same move for the same turn.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Self, cast

import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from gm_agent.errors import ConfigError, ScriptExhausted
from gm_agent.events import TokenUsage, ToolCallData
from gm_agent.llm._messages import ModelRequest, Move, OnDelta
from gm_agent.llm.prices import Pricing

__all__ = ["FunctionModel", "ScriptedModel"]


class _ScriptedCall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    args: dict[str, JsonValue] = Field(default_factory=dict)


class _ScriptedMove(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = ""
    tool_calls: list[_ScriptedCall] = []  # pydantic copies mutable defaults
    finish: str | None = None


def _turn(request: ModelRequest) -> int:
    """The 0-based turn ``request`` asks for: its step, else the turns it shows."""
    if request.step is not None:
        return request.step - 1
    return sum(1 for m in request.messages if m.role == "assistant")


def _usage(request: ModelRequest, move: Move) -> TokenUsage:
    """A deterministic stand-in for token counts: about 4 characters per token of
    the messages' text and tool-call arguments."""
    prompt = sum(
        len(m.text) + sum(len(json.dumps(c.args)) for c in m.tool_calls) for m in request.messages
    )
    return TokenUsage(input_tokens=prompt // 4, output_tokens=len(move.text) // 4 + 1)


class ScriptedModel:
    """Plays recorded moves from a YAML file; see the module docstring for the format."""

    def __init__(self, name: str, moves: list[Move]) -> None:
        self.name = name
        self.pricing: Pricing = "free"
        self.context_window: int | None = None
        self._moves = moves

    @classmethod
    def from_file(cls, path: Path | str) -> Self:
        """Load a script.

        Raises:
            ConfigError: the file is missing, is not YAML, or an item is malformed
                (the message names the item's 1-based index and the field).
        """
        path = Path(path)
        try:
            raw: object = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read scripted model file {str(path)!r}: {exc}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"scripted model file {str(path)!r} is not valid YAML: {exc}"
            ) from exc
        if not isinstance(raw, list):
            raise ConfigError(f"scripted model file {str(path)!r} must be a YAML list of moves")
        moves: list[Move] = []
        items = cast(list[object], raw)
        for index, item in enumerate(items, start=1):
            try:
                scripted = _ScriptedMove.model_validate(item)
            except ValidationError as exc:
                raise ConfigError(f"{str(path)!r}, move {index}: {exc}") from exc
            calls = [
                ToolCallData(call_id=f"call_{index}_{n}", name=c.name, args=c.args)
                for n, c in enumerate(scripted.tool_calls, start=1)
            ]
            if scripted.finish is not None:
                calls.append(
                    ToolCallData(
                        call_id=f"call_{index}_{len(calls) + 1}",
                        name="finish",
                        args={"summary": scripted.finish},
                    )
                )
            moves.append(
                Move(text=scripted.text, tool_calls=tuple(calls), finish_reason="scripted")
            )
        return cls(f"scripted:{path}", moves)

    async def request(self, request: ModelRequest, on_delta: OnDelta | None = None) -> Move:
        """Return the move for this turn. Raises ``ScriptExhausted`` past the end."""
        turn = _turn(request)
        if turn >= len(self._moves):
            raise ScriptExhausted(
                f"{self.name!r} has {len(self._moves)} moves and the run asked for move "
                f"{turn + 1}; end the script with a `finish:` item"
            )
        move = self._moves[turn]
        return move.model_copy(update={"usage": _usage(request, move), "model": self.name})

    async def aclose(self) -> None:
        """Nothing to release."""


class FunctionModel:
    """A model whose moves come from a Python function, for tests.

    Args:
        function: called with each request; returns the move.
        name: the model name to report.
    """

    def __init__(
        self, function: Callable[[ModelRequest], Awaitable[Move]], name: str = "function:test"
    ) -> None:
        self.name = name
        self.pricing: Pricing = "free"
        self.context_window: int | None = None
        self._function = function

    async def request(self, request: ModelRequest, on_delta: OnDelta | None = None) -> Move:
        return await self._function(request)

    async def aclose(self) -> None:
        """Nothing to release."""
