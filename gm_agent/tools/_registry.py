"""Tools: what the model may call, and what each call asks the kernel to do.

A tool validates its arguments (a pydantic model whose JSON Schema the model
sees) and returns an :data:`Outcome`. Reading tools answer directly with a
:class:`Reply`; tools with effects only *propose* them (:class:`FileWrite`,
:class:`ShellCommand`, :class:`Finish`) and the kernel carries them out as
patches and jobs, so control stays in the runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import anyio.to_thread
from pydantic import BaseModel, ValidationError

from gm_agent.errors import ToolError, UserError
from gm_agent.llm import ToolSpec
from gm_agent.settings import ToolSettings
from gm_agent.skills import SkillSource
from gm_agent.tools._join import FailurePolicy, JoinPolicy

__all__ = [
    "FileWrite",
    "Finish",
    "Outcome",
    "Reply",
    "ShellCommand",
    "SpawnAgent",
    "Tool",
    "ToolContext",
    "ToolRegistry",
    "WaitAgents",
]


@dataclass(frozen=True)
class Reply:
    """A direct answer for the model. ``ok=False`` marks an error the model caused."""

    output: str
    ok: bool = True


@dataclass(frozen=True)
class FileWrite:
    """Replace the file at ``target`` (absolute, inside the workspace) with ``content``."""

    target: Path
    content: bytes
    expected_before: bytes | None


@dataclass(frozen=True)
class ShellCommand:
    """Run ``command`` in the workspace for at most ``timeout_s`` seconds."""

    command: str
    timeout_s: float


@dataclass(frozen=True)
class Finish:
    """End the run successfully with ``summary``."""

    summary: str


@dataclass(frozen=True)
class SpawnAgent:
    """Start a child run on ``task``: its tools (``None``: the parent's), model
    (``None``: the parent's), step budget (``None``: what the kernel allows),
    whether it may only read, and the ``group`` a join waits for."""

    task: str
    tools: tuple[str, ...] | None
    model: str | None
    max_steps: int | None
    read_only: bool
    group: str


@dataclass(frozen=True)
class WaitAgents:
    """Wait for the children of ``group`` by ``policy`` and ``on_failure``, at most
    ``timeout_s`` seconds."""

    group: str
    policy: JoinPolicy
    on_failure: FailurePolicy
    timeout_s: float


Outcome = Reply | FileWrite | ShellCommand | Finish | SpawnAgent | WaitAgents


@dataclass(frozen=True)
class ToolContext:
    """What a tool may look at: the workspace root, the tool limits, and the
    folders skills are found in (``(source, folder)`` pairs, first one wins)."""

    workspace: Path
    limits: ToolSettings
    skill_dirs: tuple[tuple[SkillSource, Path], ...] = ()


Handler = Callable[[ToolContext, Any], Outcome]
"""A tool's body: synchronous, run in a worker thread so file I/O never blocks the loop."""


@dataclass(frozen=True)
class Tool:
    """One tool: its name, what it is for, its argument model and its handler."""

    name: str
    description: str
    args_model: type[BaseModel]
    handler: Handler

    def spec(self) -> ToolSpec:
        """The tool as the model sees it (built once: JSON Schema generation is slow)."""
        return self._spec

    @cached_property
    def _spec(self) -> ToolSpec:
        schema = self.args_model.model_json_schema()
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        return ToolSpec(name=self.name, description=self.description, parameters=schema)

    async def call(self, context: ToolContext, args: dict[str, Any]) -> Outcome:
        """Validate ``args`` and run the handler.

        Raises:
            ToolError: the arguments do not match the tool's schema, or the tool
                refused (the message is for the model).
        """
        try:
            parsed = self.args_model.model_validate(args)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'args'}: {e['msg']}" for e in exc.errors()
            )
            raise ToolError(f"invalid arguments for {self.name}: {problems}") from exc
        try:
            # Handlers only read; a thread stuck on slow I/O must not hold up an interrupt.
            return await anyio.to_thread.run_sync(
                self.handler, context, parsed, abandon_on_cancel=True
            )
        except OSError as exc:
            where = f" ({exc.filename!r})" if exc.filename else ""
            raise ToolError(f"{self.name}: {exc.strerror or exc}{where}") from exc
        except UnicodeError as exc:
            raise ToolError(f"{self.name}: {exc}") from exc


class ToolRegistry:
    """The tools available to runs, by name."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        """Add ``tool``. Raises ``UserError`` if its name is taken."""
        if tool.name in self._tools:
            raise UserError(f"a tool named {tool.name!r} is already registered")
        self._tools[tool.name] = tool

    def args_models(self) -> dict[str, type[BaseModel]]:
        """Each tool's argument model, by tool name."""
        return {name: tool.args_model for name, tool in self._tools.items()}

    def names(self) -> list[str]:
        """Registered tool names, in registration order."""
        return list(self._tools)

    def select(self, allowed: Iterable[str] | None) -> list[Tool]:
        """The tools a run may use: all, or those in ``allowed`` (``finish`` always).

        Raises:
            UserError: ``allowed`` names a tool that does not exist.
        """
        if allowed is None:
            return list(self._tools.values())
        wanted = set(allowed) | {"finish"}
        unknown = wanted - set(self._tools)
        if unknown:
            raise UserError(
                f"unknown tools {sorted(unknown)!r} in the allow-list; known tools: {self.names()!r}"
            )
        return [tool for name, tool in self._tools.items() if name in wanted]
