"""The steps of a scheme: frozen pydantic models of a step and of each kind of body.

Each model checks its own values (types, ranges, one body per step); how steps
relate to each other (names, ``depends_on``, templates) is checked once the whole
scheme is read. ``line`` and ``key_lines`` are set by the loader, never by the
file: a file that names them is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

__all__ = [
    "IDENTIFIER",
    "SET_BY_LOADER",
    "STRICT",
    "AgentCall",
    "LlmCall",
    "OnError",
    "Retry",
    "SchemeCall",
    "Step",
    "StepKind",
    "ToolCall",
    "templates_of",
]

StepKind = Literal["shell", "tool", "llm", "agent", "scheme"]
OnError = Literal["blocked", "continue", "fallback"]

KINDS: tuple[StepKind, ...] = ("shell", "tool", "llm", "agent", "scheme")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""Step and parameter names: what a template can write after ``steps.`` or ``params.``."""
JSON_TYPES = frozenset({"string", "integer", "number", "boolean", "array", "object", "null"})
STRICT = ConfigDict(frozen=True, extra="forbid")
SET_BY_LOADER = "unknown key (gm sets it; a scheme file cannot)"


class Retry(BaseModel):
    """``retry: {attempts: 3, backoff_s: 1, factor: 2}``: try up to ``attempts``
    times in all, waiting ``backoff_s`` seconds after the first failure, then
    ``factor`` times longer after each next one."""

    model_config = STRICT

    attempts: int = Field(strict=True)
    backoff_s: float = Field(default=0.0, ge=0, strict=True)
    factor: float = Field(default=1.0, ge=1, strict=True)

    @field_validator("attempts")
    @classmethod
    def _at_least_one(cls, attempts: int) -> int:
        if attempts < 1:
            raise ValueError(
                f"attempts is {attempts}, but it counts every try, the first included: use 1 or more"
            )
        return attempts


class ToolCall(BaseModel):
    """``tool: {name: read_file, args: {path: x}}``: one call of a registered tool.
    String values in ``args`` are templates."""

    model_config = STRICT

    name: str = Field(min_length=1)
    args: dict[str, JsonValue] = Field(default_factory=dict[str, JsonValue])


class LlmCall(BaseModel):
    """``llm: {prompt: ..., schema: {...}}``: one model request whose answer must
    be JSON matching ``schema`` (a JSON Schema object). ``prompt`` is a template."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    prompt: str = Field(min_length=1)
    output_schema: dict[str, JsonValue] = Field(alias="schema", min_length=1)

    @field_validator("output_schema")
    @classmethod
    def _json_schema(cls, schema: dict[str, JsonValue]) -> dict[str, JsonValue]:
        kind = schema.get("type")
        kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
        for each in kinds:
            if each not in JSON_TYPES:
                raise ValueError(
                    f"type {each!r} is not a JSON Schema type; use one of {sorted(JSON_TYPES)}"
                )
        return schema


class AgentCall(BaseModel):
    """``agent: {task: ..., tools: [...], max_steps: 30, model: ...}``: a whole
    agent run on ``task`` (a template), limited to ``tools`` when given."""

    model_config = STRICT

    task: str = Field(min_length=1)
    tools: tuple[str, ...] | None = None
    max_steps: int | None = Field(default=None, ge=1, strict=True)
    model: str | None = Field(default=None, min_length=1)


class SchemeCall(BaseModel):
    """``scheme: {name: other, params: {...}}``: another scheme run as one step.
    String values in ``params`` are templates."""

    model_config = STRICT

    name: str = Field(min_length=1)
    params: dict[str, JsonValue] = Field(default_factory=dict[str, JsonValue])


class Step(BaseModel):
    """One step: a unique ``name``, exactly one body (``shell``, ``tool``, ``llm``,
    ``agent`` or ``scheme``), and how it is run.

    Attributes:
        depends_on: names of the steps that must finish first.
        when: a template; the step is skipped when it renders false (see ``condition``).
        retry: how often to try, and how long to wait between tries.
        timeout_s: seconds one attempt may take.
        tools: the tools an ``agent`` or ``llm`` step may use.
        on_error: what a failure (after the retries) does: ``blocked`` (the
            run stops for a human), ``continue`` (the failure is recorded and
            the steps after it run, seeing ``steps.NAME.failed``) or
            ``fallback`` (the engine's fallback; see docs/schemes.md).
        idempotent: running the step twice is harmless, so a run that stopped
            while it ran runs it again on resume; otherwise its outcome is
            unknown (``job.ambiguous``) and ``on_error`` applies.
        line: 1-based line where the step starts (0 when built in code).
        key_lines: 1-based line of each key under the step, dotted
            (``"retry.attempts"``, ``"agent.task"``); for a string, the line its
            text starts on.
    """

    model_config = STRICT

    name: str
    shell: str | None = Field(default=None, min_length=1)
    tool: ToolCall | None = None
    llm: LlmCall | None = None
    agent: AgentCall | None = None
    scheme: SchemeCall | None = None
    depends_on: tuple[str, ...] = ()
    when: str | None = None
    retry: Retry | None = None
    timeout_s: float | None = Field(default=None, gt=0, strict=True)
    tools: tuple[str, ...] | None = None
    on_error: OnError = "blocked"
    idempotent: bool = Field(default=False, strict=True)
    line: int = Field(default=0, exclude=True)
    key_lines: dict[str, int] = Field(default_factory=dict[str, int], exclude=True)

    @field_validator("line", "key_lines", mode="before")
    @classmethod
    def _set_by_loader(cls, value: object) -> object:
        raise ValueError(SET_BY_LOADER)

    @field_validator("name")
    @classmethod
    def _identifier(cls, name: str) -> str:
        if not IDENTIFIER.fullmatch(name):
            raise ValueError(
                f"step name {name!r}: use letters, digits and _ (not first), "
                "so templates can say steps.NAME"
            )
        return name

    @model_validator(mode="after")
    def _one_body(self) -> Step:
        given = [kind for kind in KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            found = f"has {' and '.join(given)}" if given else "has none"
            raise ValueError(f"a step needs exactly one of {', '.join(KINDS)}; {found}")
        if self.tools is not None and given[0] not in ("agent", "llm"):
            raise ValueError("tools is for agent and llm steps (the tools the model may use)")
        if self.tools is not None and self.agent is not None and self.agent.tools is not None:
            raise ValueError("give the tools once: in agent.tools or in the step's tools")
        return self

    @property
    def kind(self) -> StepKind:
        """Which body the step has."""
        return next(kind for kind in KINDS if getattr(self, kind) is not None)

    @property
    def allowed_tools(self) -> tuple[str, ...] | None:
        """The tools the step's model may use (``agent.tools`` or ``tools``); None: all."""
        if self.agent is not None and self.agent.tools is not None:
            return self.agent.tools
        return self.tools

    def line_of(self, key: str) -> int:
        """The 1-based line of ``key`` (dotted) under the step, else of the step."""
        return self.key_lines.get(key, self.line)


def templates_of(step: Step) -> Iterator[tuple[str, str]]:
    """Each template of ``step`` as ``(dotted key, text)``: ``shell``, ``when``,
    ``llm.prompt``, ``agent.task``, and the strings in ``tool.args`` and ``scheme.params``."""
    if step.when is not None:
        yield "when", step.when
    if step.shell is not None:
        yield "shell", step.shell
    if step.llm is not None:
        yield "llm.prompt", step.llm.prompt
    if step.agent is not None:
        yield "agent.task", step.agent.task
    if step.tool is not None:
        yield from _strings("tool.args", step.tool.args)
    if step.scheme is not None:
        yield from _strings("scheme.params", step.scheme.params)


def _strings(key: str, value: JsonValue | dict[str, JsonValue]) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _strings(f"{key}.{name}", item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(f"{key}.{index}", item)
