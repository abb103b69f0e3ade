"""Reading a scheme file: YAML, then the models, then how the steps fit together."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

from pydantic import BaseModel, JsonValue, ValidationError

from gm_agent.errors import SchemeError
from gm_agent.schemes._graph import check_graph
from gm_agent.schemes._model import Scheme
from gm_agent.schemes._source import Loc, explain, read_yaml
from gm_agent.schemes._steps import Step

__all__ = ["check_tool_args", "check_tools", "load_scheme", "parse_scheme"]

_NOT_A_STEP = {
    "finish": "a scheme ends when its steps are done; remove this step",
    "run_shell": "write it as a `shell:` step, which runs through the same sandbox",
}
"""Tools a ``tool`` step may not call, and what to do instead: ``finish`` ends a
free agent's run, and ``run_shell`` proposes a command the shell step runs."""


def load_scheme(path: Path) -> Scheme:
    """Read and validate the scheme file at ``path`` (see :func:`parse_scheme`).

    Raises:
        SchemeError: it cannot be read, or is invalid; names the file and line.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemeError(f"cannot read the scheme file: {exc}", path=str(path)) from exc
    return parse_scheme(text, path)


def parse_scheme(text: str, path: Path | None = None) -> Scheme:
    """Parse and validate a scheme.

    Beyond each value's type and range: step names are unique, ``depends_on``
    names known steps and makes no cycle, every template parses, and reads
    only declared ``params`` and the results of steps it depends on.

    Args:
        text: the YAML.
        path: the file it came from; named in errors and kept as ``Scheme.path``.

    Returns:
        The scheme, each step and parameter knowing its line.

    Raises:
        SchemeError: the first problem found, as ``FILE:LINE: what; what to do``.
    """
    shown = str(path) if path else "<scheme>"
    data, lines, literal = read_yaml(text, shown)
    try:
        scheme = Scheme.model_validate(data)
    except ValidationError as exc:
        raise explain(exc, data, lines, shown) from exc
    scheme = _located(scheme, lines, path)
    check_graph(scheme)
    from gm_agent.schemes._templates import check_templates  # Jinja2: only with a scheme

    check_templates(scheme, {(loc[1], ".".join(map(str, loc[2:]))) for loc in literal})
    return scheme


def _located(scheme: Scheme, lines: dict[Loc, int], path: Path | None) -> Scheme:
    """``scheme`` with the lines of its steps, parameters and keys, and its path."""
    steps = tuple(
        step.model_copy(
            update={"line": lines[("steps", i)], "key_lines": _under(lines, ("steps", i))}
        )
        for i, step in enumerate(scheme.steps)
    )
    params = {
        name: param.model_copy(update={"line": lines[("params", name)]})
        for name, param in scheme.params.items()
    }
    top = {str(loc[0]): line for loc, line in lines.items() if len(loc) == 1}
    return scheme.model_copy(
        update={"steps": steps, "params": params, "path": path, "key_lines": top}
    )


def _under(lines: dict[Loc, int], prefix: Loc) -> dict[str, int]:
    """The lines of the places below ``prefix``, keyed by their dotted rest."""
    size = len(prefix)
    return {
        ".".join(str(part) for part in loc[size:]): line
        for loc, line in lines.items()
        if len(loc) > size and loc[:size] == prefix
    }


def check_tools(scheme: Scheme, known: Collection[str]) -> None:
    """Check every tool ``scheme`` names is in ``known`` (a registry's names).

    ``finish`` is always allowed. Kept apart from :func:`parse_scheme` because
    which tools exist depends on the registry a run uses.

    Raises:
        SchemeError: a ``tool`` step, ``tools`` or ``agent.tools`` names an
            unknown tool; with the line.
    """
    allowed = {*known, "finish"}
    for step in scheme.steps:
        for key, line_key, tool in _tools_named(step):
            if tool not in allowed:
                raise SchemeError(
                    f"step {step.name!r}: {key}: unknown tool {tool!r}; "
                    f"known tools: {', '.join(sorted(allowed))}",
                    path=str(scheme.path) if scheme.path else f"scheme {scheme.name!r}",
                    line=step.line_of(line_key),
                )
            if key == "tool.name" and tool in _NOT_A_STEP:
                raise SchemeError(
                    f"step {step.name!r}: a tool step cannot call {tool!r}: {_NOT_A_STEP[tool]}",
                    path=str(scheme.path) if scheme.path else f"scheme {scheme.name!r}",
                    line=step.line_of(line_key),
                )


def check_tool_args(scheme: Scheme, models: Mapping[str, type[BaseModel]]) -> None:
    """Check each ``tool`` step's ``args`` against its tool's argument model
    (``models``: tool name -> pydantic model, a registry's): unknown and missing
    arguments always; the values' types when none of them is a template (a
    template's value is known only when the step renders it).

    Raises:
        SchemeError: the first problem, with the step's line.
    """
    shown = str(scheme.path) if scheme.path else f"scheme {scheme.name!r}"
    for step in scheme.steps:
        if step.tool is None or step.tool.name not in models:
            continue
        model, args = models[step.tool.name], step.tool.args
        fields = model.model_fields
        for key in args:
            if key not in fields:
                raise SchemeError(
                    f"step {step.name!r}: {step.tool.name} has no argument {key!r}; "
                    f"it takes: {', '.join(fields)}",
                    path=shown,
                    line=step.line_of(f"tool.args.{key}"),
                )
        missing = [k for k, f in fields.items() if f.is_required() and k not in args]
        if missing:
            raise SchemeError(
                f"step {step.name!r}: {step.tool.name} needs the argument {missing[0]!r}",
                path=shown,
                line=step.line_of("tool.name"),
            )
        if not any(_templated(value) for value in args.values()):
            try:
                model.model_validate(args)
            except ValidationError as exc:
                error = exc.errors()[0]
                where = ".".join(str(part) for part in error["loc"])
                raise SchemeError(
                    f"step {step.name!r}: {step.tool.name} argument {where!r}: {error['msg']}",
                    path=shown,
                    line=step.line_of(f"tool.args.{where}"),
                ) from exc


def _templated(value: JsonValue) -> bool:
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, list):
        return any(_templated(v) for v in value)
    if isinstance(value, dict):
        return any(_templated(v) for v in value.values())
    return False


def _tools_named(step: Step) -> list[tuple[str, str, str]]:
    """``(key, dotted key of its line, tool)`` for each tool ``step`` names."""
    named: list[tuple[str, str, str]] = []
    if step.tool is not None:
        named.append(("tool.name", "tool.name", step.tool.name))
    lists = (("tools", step.tools), ("agent.tools", step.agent.tools if step.agent else None))
    for key, tools in lists:
        named.extend((key, f"{key}.{i}", tool) for i, tool in enumerate(tools or ()))
    return named
