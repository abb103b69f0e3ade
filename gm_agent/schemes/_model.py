"""What a scheme is: frozen pydantic models of the scheme and its parameters.

The steps are in ``_steps``. ``line``, ``key_lines`` and ``path`` are set by the
loader, never by the file: a file that names them is refused.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, JsonValue, ValidationInfo, field_validator, model_validator

from gm_agent.schemes._steps import IDENTIFIER, SET_BY_LOADER, STRICT, Step

__all__ = ["Param", "ParamType", "Scheme", "type_matches"]

ParamType = Literal["string", "integer", "number", "boolean", "array", "object"]
SCHEME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def type_matches(kind: ParamType, value: object) -> bool:
    """Whether ``value`` (already parsed) is of the JSON type ``kind``.

    ``True`` is a boolean, not an integer; an integer is a number too.
    """
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return {
        "string": isinstance(value, str),
        "integer": is_number and isinstance(value, int),
        "number": is_number,
        "boolean": isinstance(value, bool),
        "array": isinstance(value, list | tuple),
        "object": isinstance(value, dict),
    }[kind]


class Param(BaseModel):
    """One declared parameter: ``{type: integer, default: 3, description: ..., enum: [...]}``.

    A parameter without a ``default`` is required. ``line`` is where it is
    declared (1-based; 0 when built in code).
    """

    model_config = STRICT

    type: ParamType
    description: str = ""
    default: JsonValue = None
    enum: tuple[JsonValue, ...] | None = Field(default=None, min_length=1)
    line: int = Field(default=0, exclude=True)

    @field_validator("line", mode="before")
    @classmethod
    def _set_by_loader(cls, value: object) -> object:
        raise ValueError(SET_BY_LOADER)

    @property
    def required(self) -> bool:
        """Whether a value must be given: the parameter has no default."""
        return self.default is None

    @field_validator("enum")
    @classmethod
    def _enum_typed(
        cls, enum: tuple[JsonValue, ...] | None, info: ValidationInfo
    ) -> tuple[JsonValue, ...] | None:
        kind: ParamType | None = info.data.get("type")
        for choice in enum or ():
            if kind is not None and not type_matches(kind, choice):
                raise ValueError(f"bad parameter types: enum value {choice!r} is not {_A[kind]}")
        return enum

    @field_validator("default")
    @classmethod
    def _default_typed(cls, default: JsonValue, info: ValidationInfo) -> JsonValue:
        kind: ParamType | None = info.data.get("type")
        if default is None:
            raise ValueError("a null default: leave `default` out to make the parameter required")
        if kind is not None and not type_matches(kind, default):
            raise ValueError(
                f"bad parameter types: the default {default!r} is not {_A[kind]}; "
                f"change the default or the type"
            )
        return default

    @model_validator(mode="after")
    def _default_in_enum(self) -> Param:
        if self.enum is not None and self.default is not None and self.default not in self.enum:
            raise ValueError(
                f"the default {self.default!r} is not one of the enum {list(self.enum)}"
            )
        return self


_A: dict[ParamType, str] = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "an array",
    "object": "an object",
}


class Scheme(BaseModel):
    """A strict procedure: typed ``params`` and ``steps`` forming a DAG.

    Attributes:
        name: how ``gm scheme run NAME`` finds it (the file's stem).
        description: one line saying what it does.
        params: declared parameters by name, in file order.
        steps: the steps in file order.
        path: the file it was read from, if any.
        key_lines: 1-based line of each top-level key (``"params"``, ``"steps"``).
    """

    model_config = STRICT

    name: str
    description: str = Field(min_length=1)
    params: dict[str, Param] = Field(default_factory=dict[str, Param])
    steps: tuple[Step, ...]
    path: Path | None = Field(default=None, exclude=True)
    key_lines: dict[str, int] = Field(default_factory=dict[str, int], exclude=True)

    @field_validator("path", "key_lines", mode="before")
    @classmethod
    def _set_by_loader(cls, value: object) -> object:
        raise ValueError(SET_BY_LOADER)

    @field_validator("name")
    @classmethod
    def _scheme_name(cls, name: str) -> str:
        if not SCHEME_NAME.fullmatch(name):
            raise ValueError(
                f"scheme name {name!r}: use letters, digits, '.', '_' and '-' (a file name)"
            )
        return name

    @field_validator("steps")
    @classmethod
    def _some_steps(cls, steps: tuple[Step, ...]) -> tuple[Step, ...]:
        if not steps:
            raise ValueError("a scheme needs at least one step")
        return steps

    @field_validator("params")
    @classmethod
    def _param_names(cls, params: dict[str, Param]) -> dict[str, Param]:
        for name in params:
            if not IDENTIFIER.fullmatch(name):
                raise ValueError(
                    f"parameter name {name!r}: use letters, digits and _ (not first), "
                    "so templates can say params.NAME"
                )
        return params

    def step(self, name: str) -> Step:
        """The step called ``name``.

        Raises:
            KeyError: there is none.
        """
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)
