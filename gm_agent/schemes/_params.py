"""Binding the values given for a run (``-p key=value``) to a scheme's parameters."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import cast

from gm_agent.errors import SchemeError
from gm_agent.schemes._model import Param, ParamType, Scheme, type_matches

__all__ = ["bind_params", "check_call", "declared"]

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
_FORMS: dict[ParamType, str] = {
    "string": "text",
    "integer": "an integer, like 3",
    "number": "a number, like 2.5",
    "boolean": "true/false, yes/no or 1/0",
    "array": 'a JSON array, like ["a", 1]',
    "object": 'a JSON object, like {"a": 1}',
}


def bind_params(scheme: Scheme, given: Mapping[str, str | object]) -> dict[str, object]:
    """The value of every declared parameter: given, converted, or its default.

    A string is converted to the declared type: ``integer`` and ``number`` as
    numbers, ``boolean`` from ``true``/``false``/``yes``/``no``/``1``/``0``
    (any case), ``array`` and ``object`` as JSON; a ``string`` is kept as is.
    Any other value (from a sub-scheme call) must have the declared type already.

    Args:
        scheme: the scheme whose ``params`` are bound.
        given: parameter name -> value, e.g. from ``-p version=1.2.0``.

    Returns:
        Every declared parameter by name, in the order declared.

    Raises:
        SchemeError: an unknown name, a missing required parameter, a value that
            is not of the declared type or not in its ``enum``; the message lists
            the declared parameters.
    """
    shown = str(scheme.path) if scheme.path else f"scheme {scheme.name!r}"
    unknown = [key for key in given if key not in scheme.params]
    if unknown:
        raise SchemeError(
            f"{scheme.name!r} has no parameter {unknown[0]!r}; it declares: {declared(scheme)}",
            path=shown,
            line=scheme.key_lines.get("params") or scheme.key_lines.get("name"),
        )
    bound: dict[str, object] = {}
    for name, param in scheme.params.items():
        if name in given:
            bound[name] = _value(name, param, given[name], shown, scheme)
        elif param.required:
            raise SchemeError(
                f"the parameter {name!r} is required: give it with -p {name}=VALUE "
                f"({_FORMS[param.type]}); {scheme.name!r} declares: {declared(scheme)}",
                path=shown,
                line=param.line or None,
            )
        else:
            bound[name] = param.default
    return bound


def check_call(
    called: Scheme, given: Mapping[str, object], *, path: str | None, line: int | None
) -> None:
    """Check the ``params`` a ``scheme:`` step passes to ``called``, before any run.

    Unknown names and missing required parameters are errors; so is a value of
    the wrong type, for each value that is not a template (a template is
    converted when the step renders it, as :func:`bind_params` does).

    Args:
        called: the scheme the step calls.
        given: the step's ``scheme.params``.
        path: the calling scheme's file, named in the error.
        line: the calling step's line, named in the error.

    Raises:
        SchemeError: the first problem, at ``path:line``.
    """
    for name in given:
        if name not in called.params:
            raise SchemeError(
                f"{called.name!r} has no parameter {name!r}; it declares: {declared(called)}",
                path=path,
                line=line,
            )
    for name, param in called.params.items():
        if name not in given:
            if param.required:
                raise SchemeError(
                    f"{called.name!r} needs the parameter {name!r} ({_FORMS[param.type]}); "
                    f"add it under `params:`",
                    path=path,
                    line=line,
                )
            continue
        raw = given[name]
        if isinstance(raw, str) and "{{" in raw:
            continue
        try:
            _value(name, param, raw, "", called)
        except SchemeError as exc:
            raise SchemeError(str(exc), path=path, line=line) from exc


def declared(scheme: Scheme) -> str:
    """``version (string, required), changelog (string, default 'CHANGELOG.md')``, or ``none``."""
    parts = [
        f"{name} ({param.type}, {'required' if param.required else f'default {param.default!r}'})"
        for name, param in scheme.params.items()
    ]
    return ", ".join(parts) or "no parameters"


def _value(name: str, param: Param, raw: object, shown: str, scheme: Scheme) -> object:
    value = _convert(param.type, raw) if isinstance(raw, str) else raw
    if value is _BAD or not type_matches(param.type, value):
        raise SchemeError(
            f"the parameter {name!r} takes {_FORMS[param.type]}, not {raw!r}; "
            f"{scheme.name!r} declares: {declared(scheme)}",
            path=shown,
            line=param.line or None,
        )
    if param.enum is not None and value not in param.enum:
        raise SchemeError(
            f"the parameter {name!r} is {value!r}, but must be one of {list(param.enum)}",
            path=shown,
            line=param.line or None,
        )
    return list(cast(tuple[object, ...], value)) if isinstance(value, tuple) else value


_BAD = object()
"""What a string that cannot be converted becomes."""


def _convert(kind: ParamType, text: str) -> object:
    """``text`` as a value of ``kind``, or ``_BAD``."""
    try:
        match kind:
            case "string":
                return text
            case "integer":
                return int(text.strip())
            case "number":
                number = float(text.strip())
                return number if math.isfinite(number) else _BAD
            case "boolean":
                word = text.strip().lower()
                return True if word in _TRUE else False if word in _FALSE else _BAD
            case "array" | "object":
                return json.loads(text)
    except ValueError:  # json.JSONDecodeError is a ValueError
        return _BAD
