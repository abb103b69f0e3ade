"""task.md: a Markdown task with optional YAML front matter.

::

    ---
    model: local:smollm2
    max_steps: 8
    tools: [read_file, write_file]
    instructions: Keep answers short.
    policy:
      rules:
        - {tool: run_shell, match: "git push*", action: ask}
    sandbox:
      network: true
    ---
    Create hello.txt containing "Hello, world!".

The body is the task. Front matter keys: ``model``, ``models`` (the model,
then fallbacks for when its provider fails), ``max_steps``, ``tools`` (an
allow-list; ``finish`` is always allowed), ``instructions`` (extra system
prompt), ``policy`` (``rules`` as in gm.toml's ``[[policy.rules]]``),
``budget`` (the keys of gm.toml's ``[budget]``) and ``sandbox`` (``network``:
let the task's shell commands reach the network). Errors name the file and line.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gm_agent.errors import TaskFileError
from gm_agent.settings import BudgetSettings, PolicyRule, Trigger

__all__ = ["TaskPolicy", "TaskSandbox", "TaskSpec", "load_task", "parse_task"]

_FENCE = "---"


class TaskPolicy(BaseModel):
    """A task's ``policy:``: rules added to gm.toml's for its runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: tuple[PolicyRule, ...] = ()


class TaskSandbox(BaseModel):
    """A task's ``sandbox:``. Only ``network`` (gm.toml's ``[sandbox]`` decides the
    backend and limits: a task cannot loosen them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    network: bool = False


class TaskSpec(BaseModel):
    """A parsed task file.

    Attributes:
        text: the Markdown body: what the model is asked to do.
        path: the file it came from, if any.
        model: ``provider:model`` from the front matter, if set. A relative
            ``scripted:`` path is made absolute against the task's directory.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    path: Path | None = None
    model: str | None = None
    models: tuple[str, ...] | None = None
    max_steps: int | None = Field(default=None, ge=1, strict=True)
    tools: tuple[str, ...] | None = None
    instructions: str | None = None
    policy: TaskPolicy | None = None
    budget: BudgetSettings | None = None
    sandbox: TaskSandbox | None = None
    on: tuple[Trigger, ...] = ()
    """Triggers that run this task under ``gm serve`` (the keys of gm.toml's
    ``[[triggers]]``; ``task`` is this file and ``name`` defaults to its stem)."""


def _split(source: str, path: str) -> tuple[str | None, str, int]:
    """Split into (front matter or None, body, 1-based line where the front matter starts)."""
    lines = source.splitlines(keepends=True)
    if not lines or lines[0].strip() != _FENCE:
        return None, source, 0
    for index in range(1, len(lines)):
        if lines[index].strip() == _FENCE:
            return "".join(lines[1:index]), "".join(lines[index + 1 :]), 2
    raise TaskFileError(
        path, "the front matter opened with '---' is never closed with '---'", line=1
    )


def _key_lines(front: str) -> dict[str, int]:
    """0-based line of each top-level key in the front matter, for error messages."""
    node = yaml.compose(front)
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(key.value): key.start_mark.line for key, _ in node.value}


def parse_task(source: str, path: Path | None = None) -> TaskSpec:
    """Parse task text.

    Raises:
        TaskFileError: malformed front matter (with the line), an unknown or
            invalid key (with its line), or an empty body.
    """
    shown = str(path) if path else "<task>"
    front, body, offset = _split(source, shown)
    fields: dict[str, object] = {}
    if front is not None:
        try:
            loaded = yaml.safe_load(front)
            key_lines = _key_lines(front)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + offset if mark else None
            raise TaskFileError(
                shown, f"front matter is not valid YAML: {exc.problem}", line
            ) from exc
        except yaml.YAMLError as exc:  # e.g. a control character: no mark, but a message
            raise TaskFileError(shown, f"front matter is not valid YAML: {exc}", offset) from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise TaskFileError(shown, "front matter must be a mapping of keys to values", offset)
        raw = cast(dict[object, object], loaded or {})
        # YAML 1.1 reads a bare `on` key as the boolean true.
        fields = {"on" if k is True else str(k): v for k, v in raw.items()}
        if "on" in fields:
            fields["on"] = _triggers(fields["on"], path)
        for key in ("tools", "models"):
            if isinstance(fields.get(key), list):
                fields[key] = tuple(cast(list[object], fields[key]))
        try:
            TaskSpec.model_validate({**fields, "text": "x"})
        except ValidationError as exc:
            error = exc.errors()[0]
            key = str(error["loc"][0]) if error["loc"] else ""
            line = key_lines[key] + offset if key in key_lines else offset
            message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            raise TaskFileError(
                shown,
                f"front matter {key!r}: {message} (known keys: model, models, max_steps, tools, instructions, policy, budget, sandbox, on)",
                line,
            ) from exc
    text = body.strip()
    if not text:
        raise TaskFileError(shown, "the task is empty: write what to do below the front matter")
    if path is not None:
        if isinstance(fields.get("model"), str):
            fields["model"] = _beside(str(fields["model"]), path)
        if isinstance(fields.get("models"), tuple):
            models = cast(tuple[object, ...], fields["models"])
            fields["models"] = tuple(_beside(m, path) if isinstance(m, str) else m for m in models)
    return TaskSpec.model_validate({**fields, "text": text, "path": path})


def _triggers(raw: object, path: Path | None) -> object:
    """The front matter's ``on:`` (one mapping or a list) with each trigger's
    ``task`` set to this file and its ``name`` defaulting to the file's stem."""
    items = cast(list[object], raw) if isinstance(raw, list) else [raw]
    stem = path.stem if path else "task"
    found: list[object] = []
    for index, item in enumerate(items, start=1):
        if isinstance(item, dict):
            entry = {
                "on" if k is True else str(k): v
                for k, v in cast(dict[object, object], item).items()
            }
            entry.setdefault("task", str(path) if path else "<task>")
            entry.setdefault("name", stem if len(items) == 1 else f"{stem}-{index}")
            item = entry
        found.append(item)
    return tuple(found)


def _beside(model: str, path: Path) -> str:
    """A relative ``scripted:`` path made absolute against the task's directory."""
    if not model.startswith("scripted:"):
        return model
    script = Path(model.removeprefix("scripted:"))
    return model if script.is_absolute() else f"scripted:{(path.parent / script).resolve()}"


def load_task(path: Path) -> TaskSpec:
    """Read and parse the task file at ``path``.

    Raises:
        TaskFileError: it cannot be read or parsed.
    """
    try:
        source = path.read_text(encoding="utf-8-sig")  # a BOM must not hide the front matter
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskFileError(str(path), f"cannot read the task file: {exc}") from exc
    return parse_task(source, path)
