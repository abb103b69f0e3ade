"""Reading ``SKILL.md``: YAML front matter checked against the agentskills.io
specification (https://agentskills.io/specification), then the Markdown body.

::

    ---
    name: run-tests
    description: Run the project's tests and fix what fails.
    license: MIT
    compatibility: Needs git
    metadata:
      version: "1.0"
    allowed-tools: read_file run_shell
    ---
    # Run the tests
    ...

Every error names the file, the key and the line, and says what to do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import cast

import yaml

from gm_agent.errors import SkillError
from gm_agent.skills._skill import Skill, SkillSource

__all__ = [
    "MAX_COMPATIBILITY",
    "MAX_DESCRIPTION",
    "MAX_NAME",
    "check_skill_name",
    "draft_name",
    "parse_skill",
]

# Length limits in characters, from the agentskills.io specification.
MAX_NAME = 64
MAX_DESCRIPTION = 1024
MAX_COMPATIBILITY = 500

_FENCE = "---"
_FIRST_KEY_LINE = 2
"""The file line of the front matter's first line: right after the opening fence."""
_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_KNOWN = ("name", "description", "license", "compatibility", "metadata", "allowed-tools")


@dataclass(frozen=True)
class _Front:
    """The parsed front matter of one file, with where each key is."""

    shown: str
    fields: dict[str, object]
    lines: dict[str, int]
    """1-based file line of each top-level key; nested ``metadata`` keys as ``metadata.KEY``."""

    def error(self, key: str, message: str, line_key: str | None = None) -> SkillError:
        line = self.lines.get(line_key or key, 1)  # a missing key: the opening fence
        return SkillError(message, path=self.shown, line=line, field=key)

    def text(self, key: str, limit: int | None = None, hint: str = "") -> str | None:
        """The string at ``key`` (``None`` when absent or null), checked for length."""
        value = self.fields.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, not {_yaml_type(value)}{hint}")
        if not value.strip():
            raise self.error(key, f"must not be empty{hint}")
        if limit is not None and len(value) > limit:
            raise self.error(key, f"is {len(value)} characters long; the limit is {limit}{hint}")
        return value


def parse_skill(path: Path, source: SkillSource, *, text: str | None = None) -> Skill:
    """Read and check the ``SKILL.md`` at ``path``.

    Args:
        path: the ``SKILL.md`` file; its folder's name must equal the skill's name.
        source: where the folder was found, recorded on the skill.
        text: the file's content, when it is not on disk yet (a draft); then
            ``path`` is only where it would be, and nothing is read.

    Returns:
        The skill, with its body (the Markdown after the front matter) stripped.

    Raises:
        SkillError: the file cannot be read; it has no front matter, or the
            front matter is not a YAML mapping (with the line); a key is
            unknown, a required key (``name``, ``description``) is missing, or
            a value breaks the specification's rules (with the key and its line).
    """
    shown = str(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8-sig")  # a BOM must not hide the front matter
        except (OSError, UnicodeDecodeError) as exc:
            raise SkillError(f"cannot read it: {exc}", path=shown) from exc
    front, body = _split(text.removeprefix("\ufeff"), shown)
    return Skill(
        name=_name(front, path.parent.name),
        description=_description(front),
        path=path,
        source=source,
        body=body.strip(),
        license=front.text("license"),
        compatibility=front.text(
            "compatibility", MAX_COMPATIBILITY, ": name the product, packages or network it needs"
        ),
        metadata=_metadata(front),
        allowed_tools=_allowed_tools(front),
    )


def _split(text: str, shown: str) -> tuple[_Front, str]:
    """The front matter, parsed and checked for unknown keys, and the body."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != _FENCE:
        raise SkillError(
            "a SKILL.md must begin with YAML front matter between two '---' lines, "
            "holding at least `name:` and `description:`",
            path=shown,
            line=1,
        )
    close = next((i for i in range(1, len(lines)) if lines[i].strip() == _FENCE), None)
    if close is None:
        raise SkillError(
            "the front matter opened with '---' is never closed with '---'", path=shown, line=1
        )
    source = "".join(lines[1:close])
    try:
        loaded = yaml.safe_load(source)
        node = yaml.compose(source)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + _FIRST_KEY_LINE if mark else 1
        hint = ""
        if "mapping values are not allowed" in str(exc.problem):
            hint = "; quote a value that holds ': ', e.g. description: \"Deploy: to production\""
        raise SkillError(
            f"the front matter is not valid YAML: {exc.problem}{hint}", path=shown, line=line
        ) from exc
    except yaml.YAMLError as exc:  # a control character: a position, not a mark
        position = getattr(exc, "position", None)
        line = source[:position].count("\n") if isinstance(position, int) else 0
        raise SkillError(
            f"the front matter is not valid YAML: {str(exc).splitlines()[0]}",
            path=shown,
            line=line + _FIRST_KEY_LINE,
        ) from exc
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise SkillError(
            "the front matter must be a mapping of keys to values, like `name: my-skill`",
            path=shown,
            line=_FIRST_KEY_LINE,
        )
    fields = {str(k): v for k, v in cast(dict[object, object], loaded).items()}
    front = _Front(shown, fields, _key_lines(node, shown))
    for key in fields:
        if key not in _KNOWN:
            raise front.error(
                key,
                f"unknown key; the agentskills.io specification allows {', '.join(_KNOWN)} "
                "(put keys of your own under `metadata:`)",
            )
    return front, "".join(lines[close + 1 :])


def _key_lines(node: yaml.Node | None, shown: str) -> dict[str, int]:
    """1-based file line of each top-level key, and of each ``metadata`` key
    as ``metadata.KEY``.

    Raises:
        SkillError: a top-level key is given twice (YAML 1.2 requires unique
            keys; PyYAML would silently keep the last).
    """
    if not isinstance(node, yaml.MappingNode):
        return {}
    found: dict[str, int] = {}
    for key, value in cast(list[tuple[yaml.Node, yaml.Node]], node.value):
        line = key.start_mark.line + _FIRST_KEY_LINE
        if str(key.value) in found:
            raise SkillError(
                f"given twice (first on line {found[str(key.value)]}); keep one",
                path=shown,
                line=line,
                field=str(key.value),
            )
        found[str(key.value)] = line
        if key.value == "metadata" and isinstance(value, yaml.MappingNode):
            for inner, _ in cast(list[tuple[yaml.Node, yaml.Node]], value.value):
                found[f"metadata.{inner.value}"] = inner.start_mark.line + _FIRST_KEY_LINE
    return found


def _name(front: _Front, folder: str) -> str:
    """``name``: 1-64 of ``a-z 0-9 -``, no leading, trailing or double hyphen,
    equal to the folder's name (agentskills.io specification, "name field")."""
    if "name" not in front.fields:
        raise front.error("name", f"missing: add `name: {folder}` (the folder's name)")
    name = front.text("name", MAX_NAME)
    if name is None:
        raise front.error("name", f"must not be empty: write `name: {folder}`")
    if not _NAME.fullmatch(name):
        raise front.error(
            "name",
            f"{name!r} may hold only lowercase letters a-z, digits and single hyphens "
            f"between them{_suggest(name)}",
        )
    if name != folder:
        raise front.error(
            "name",
            f"{name!r} must equal the name of its folder, {folder!r}: rename the folder or the name",
        )
    return name


def check_skill_name(name: str) -> str:
    """``name`` if it is a valid skill name (agentskills.io: 1-64 of ``a-z 0-9 -``,
    hyphens only between letters or digits).

    Raises:
        SkillError: it is not; the message suggests a valid one.
    """
    if len(name) > MAX_NAME or not _NAME.fullmatch(name):
        raise SkillError(
            f"{name!r} is not a skill name: use 1-{MAX_NAME} lowercase letters a-z, digits "
            f"and single hyphens between them{_suggest(name)}"
        )
    return name


def draft_name(text: str) -> str | None:
    """The ``name`` a SKILL.md's front matter gives, when it is a valid skill
    name; else ``None`` (:func:`parse_skill` then says what is wrong).

    Only the front matter is read, never the body.
    """
    try:
        front, _ = _split(text.removeprefix("\ufeff"), "SKILL.md")
    except SkillError:
        return None
    name = front.fields.get("name")
    return name if isinstance(name, str) and _NAME.fullmatch(name) else None


def _suggest(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:MAX_NAME].rstrip("-")
    return f", e.g. {slug!r}" if slug and slug != name else ""


def _description(front: _Front) -> str:
    """``description``: 1-1024 characters saying what the skill does and when to use it."""
    hint = ": say what the skill does and when to use it, and move details into the body"
    if "description" not in front.fields:
        raise front.error("description", f"missing{hint}")
    description = front.text("description", MAX_DESCRIPTION, hint)
    if description is None:
        raise front.error("description", f"must not be empty{hint}")
    return description


def _metadata(front: _Front) -> MappingProxyType[str, str]:
    """``metadata``: a map from string keys to string values."""
    raw = front.fields.get("metadata")
    if raw is None:
        return MappingProxyType({})
    if not isinstance(raw, dict):
        raise front.error(
            "metadata", f"must be a mapping of keys to strings, not {_yaml_type(raw)}"
        )
    found: dict[str, str] = {}
    for key, value in cast(dict[object, object], raw).items():
        if not isinstance(key, str) or not isinstance(value, str):
            number = isinstance(value, int | float) and not isinstance(value, bool)
            example = f', e.g. {key}: "{value}"' if isinstance(key, str) and number else ""
            raise front.error(
                "metadata",
                f"{key!r}: {value!r}: keys and values must be strings; quote them{example}",
                line_key=f"metadata.{key}",
            )
        found[key] = value
    return MappingProxyType(found)


def _allowed_tools(front: _Front) -> tuple[str, ...]:
    """``allowed-tools``: a space-separated string or a list of strings (both
    forms are in the specification; the field is experimental)."""
    raw = front.fields.get("allowed-tools")
    if raw is None:
        return ()
    if isinstance(raw, str):
        return tuple(raw.split())
    items = cast(list[object], raw) if isinstance(raw, list) else None
    if items is None or not all(isinstance(item, str) for item in items):
        raise front.error(
            "allowed-tools",
            "must be tool names separated by spaces (`allowed-tools: read_file run_shell`) "
            "or a list of strings",
        )
    return tuple(cast(list[str], items))


def _yaml_type(value: object) -> str:
    names: dict[type, str] = {bool: "a boolean", int: "a number", float: "a number"}
    names |= {list: "a list", dict: "a mapping"}
    return names.get(type(value), type(value).__name__)
