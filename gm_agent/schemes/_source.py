"""From YAML text to data, with the line of every key, and pydantic errors told by line.

PyYAML composes the text into nodes that carry their marks; the data is built
from those same nodes, so a pydantic error location like
``("steps", 1, "retry", "attempts")`` maps to the line the user wrote it on.
"""

from __future__ import annotations

import difflib
from collections.abc import Generator
from contextlib import contextmanager
from typing import cast

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from gm_agent.errors import SchemeError
from gm_agent.schemes._model import Param, Scheme
from gm_agent.schemes._steps import AgentCall, LlmCall, Retry, SchemeCall, Step, ToolCall

__all__ = ["Loc", "explain", "line_at", "read_yaml"]

Loc = tuple[str | int, ...]
"""A place in the data: mapping keys and sequence indexes from the top."""

_SHAPE = "a scheme is a mapping with name, description, params and steps (see docs/schemes.md)"


def read_yaml(text: str, shown: str) -> tuple[dict[str, object], dict[Loc, int], set[Loc]]:
    """Parse ``text``: the data, the 1-based line of each place in it, and the
    places holding a literal block (``|``), whose text's lines are the file's.

    A mapping entry's line is its key's, except for a string, whose line is
    where its text starts (after ``|``, on the next line).

    Raises:
        SchemeError: not valid YAML, or a mapping repeats a key.
    """
    loader = yaml.SafeLoader(text)
    lines: dict[Loc, int] = {(): 1}
    literal: set[Loc] = set()
    data: object = None
    try:
        with _as_scheme_error(text, shown):
            node = loader.get_single_node()
        if node is not None:
            # Walked before construction, which merges `<<:` keys into the nodes.
            _walk(node, (), (lines, literal), shown, set())
            with _as_scheme_error(text, shown):
                data = loader.construct_document(node)  # pyright: ignore[reportUnknownMemberType]
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise SchemeError(_SHAPE, path=shown, line=1)
    return cast(dict[str, object], data), lines, literal


@contextmanager
def _as_scheme_error(text: str, shown: str) -> Generator[None, None, None]:
    """PyYAML's errors as :class:`SchemeError`, with the line and a hint."""
    try:
        yield
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise SchemeError(
            f"not valid YAML: {exc.problem}{_yaml_hint(text, line)}", path=shown, line=line
        ) from exc
    except yaml.YAMLError as exc:  # e.g. a control character: no mark
        raise SchemeError(f"not valid YAML: {exc}", path=shown, line=1) from exc


def _yaml_hint(text: str, line: int | None) -> str:
    """What to do about a YAML error on ``line``."""
    lines = text.splitlines()
    if line is not None and 0 < line <= len(lines) and "{{" in lines[line - 1]:
        return '; a value starting with {{ reads as a YAML mapping: quote it, "{{ ... }}"'
    return "; see docs/schemes.md for the format"


def _walk(
    node: yaml.Node, at: Loc, into: tuple[dict[Loc, int], set[Loc]], shown: str, above: set[int]
) -> None:
    """Record the line of each place under ``node`` (at ``at``), and which are literal
    blocks; ``above`` holds the ids of the nodes above, so a recursive alias ends."""
    lines, literal = into
    if id(node) in above:
        return
    above = above | {id(node)}
    if isinstance(node, yaml.ScalarNode) and node.style == "|":
        literal.add(at)
    if isinstance(node, yaml.MappingNode):
        pairs = cast(list[tuple[yaml.Node, yaml.Node]], node.value)
        for key, value in pairs:
            name = str(key.value)
            place = (*at, name)
            if place in lines:
                raise SchemeError(
                    f"the key {name!r} appears twice here (first on line {lines[place]}); keep one",
                    path=shown,
                    line=key.start_mark.line + 1,
                )
            scalar = isinstance(value, yaml.ScalarNode)
            lines[place] = _text_line(value) if scalar else key.start_mark.line + 1
            _walk(value, place, into, shown, above)
    elif isinstance(node, yaml.SequenceNode):
        items = cast(list[yaml.Node], node.value)
        for index, item in enumerate(items):
            lines[(*at, index)] = _text_line(item)
            _walk(item, (*at, index), into, shown, above)


def _text_line(node: yaml.Node) -> int:
    """1-based line where a node's content starts (a block scalar's on the next line)."""
    block = isinstance(node, yaml.ScalarNode) and node.style in ("|", ">")
    return node.start_mark.line + (2 if block else 1)


def line_at(lines: dict[Loc, int], loc: Loc) -> int:
    """The line of the deepest known place along ``loc`` (union tags and missing keys skipped)."""
    known: Loc = ()
    for part in loc:
        candidate = (*known, part if isinstance(part, int) else str(part))
        if candidate in lines:
            known = candidate
    return lines[known]


def explain(
    exc: ValidationError, data: dict[str, object], lines: dict[Loc, int], shown: str
) -> SchemeError:
    """The first problem in ``exc`` as a :class:`SchemeError` naming the file and line."""
    errors = exc.errors()
    error = errors[0]
    loc: Loc = error["loc"]
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return SchemeError(
        f"{_where(loc, data)}{_message(error, loc)}{more}", path=shown, line=line_at(lines, loc)
    )


def _where(loc: Loc, data: dict[str, object]) -> str:
    """``step 'retest': retry.attempts: `` for a place under a step; the dotted path otherwise."""
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
        name = _step_name(data.get("steps"), loc[1])
        rest = ".".join(str(part) for part in loc[2:])
        return f"step {name}: {rest}: " if rest else f"step {name}: "
    if len(loc) >= 2 and loc[0] == "params":
        rest = ".".join(str(part) for part in loc[2:])
        return f"parameter {str(loc[1])!r}: {rest}: " if rest else f"parameter {str(loc[1])!r}: "
    return f"{'.'.join(str(part) for part in loc)}: " if loc else ""


def _step_name(steps: object, index: int) -> str:
    items = cast(list[object], steps) if isinstance(steps, list) else []
    if index < len(items):
        step = items[index]
        if isinstance(step, dict) and isinstance(cast(dict[str, object], step).get("name"), str):
            return repr(cast(dict[str, object], step)["name"])
    return f"#{index + 1}"


def _message(error: ErrorDetails, loc: Loc) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return _unknown_key(loc)
    if kind == "missing":
        return "required: add it"
    if kind in ("value_error", "assertion_error"):
        return str(error.get("ctx", {}).get("error", error["msg"]))
    if kind in ("tuple_type", "list_type"):
        return f"should be a list, like [a, b] (got {error['input']!r})"
    value = error["input"]
    got = f" (got {value!r})" if isinstance(value, str | int | float | bool) else ""
    return f"{error['msg']}{got}"


_MODELS: dict[Loc, type[BaseModel]] = {
    (): Scheme,
    ("params", "*"): Param,
    ("steps", "*"): Step,
    ("steps", "*", "retry"): Retry,
    ("steps", "*", "tool"): ToolCall,
    ("steps", "*", "llm"): LlmCall,
    ("steps", "*", "agent"): AgentCall,
    ("steps", "*", "scheme"): SchemeCall,
}
_LOADER_SET = frozenset({"line", "key_lines", "path"})


def _unknown_key(loc: Loc) -> str:
    """``unknown key 'timeout'; did you mean 'timeout_s'? known keys: ...``."""
    if not loc:
        return "unknown key"
    *above, key = loc
    parent = tuple("*" if i == 1 else part for i, part in enumerate(above))
    model = _MODELS.get(parent)
    if model is None:
        return "unknown key"
    known = [
        field.alias or name for name, field in model.model_fields.items() if name not in _LOADER_SET
    ]
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key{hint} (known keys: {', '.join(known)})"
