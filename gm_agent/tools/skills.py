"""``load_skill``: the model reads a skill's instructions when it wants them.

The system prompt lists the skills by name and description only (the
agentskills.io specification's "progressive disclosure"); this tool returns a
skill's whole ``SKILL.md`` body and the files beside it. A read-only tool: its
answer is journaled as the call's ``tool.returned`` (with the file's path and
sha256), so which skills a run loaded, and what they said then, is in the journal.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from gm_agent.errors import SkillError, ToolError
from gm_agent.skills import discover_in
from gm_agent.tools._registry import Outcome, Reply, Tool, ToolContext

__all__ = ["SKILL_TOOLS"]


class LoadSkillArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="the skill's name, as the list of skills gives it")
    file: str | None = Field(
        default=None,
        description="a file beside the skill's SKILL.md to read instead (a path "
        "relative to the skill's folder, as load_skill lists them)",
    )


def load_skill(context: ToolContext, args: LoadSkillArgs) -> Outcome:
    """The skill ``args.name``: a header (source, path, sha256), its body, and its
    files; or, with ``args.file``, that file of the skill's folder (capped at
    ``read_cap_bytes``).

    Raises:
        ToolError: no skill has that name, or its SKILL.md is not valid (the
            message lists the known skills; the model can try again); ``file``
            is outside the skill's folder, missing or not text.
    """
    try:
        found = discover_in(context.skill_dirs)
        skill = found.get(args.name)
        digest = hashlib.sha256(skill.path.read_bytes()).hexdigest()
    except SkillError as exc:
        raise ToolError(str(exc)) from exc
    except OSError as exc:  # removed or made unreadable since it was found
        raise ToolError(f"cannot read skill {args.name!r}: {exc}") from exc
    if args.file is not None:
        return Reply(_skill_file(skill.folder, args.file, context.limits.read_cap_bytes))
    lines = [f"# skill {skill.name} ({skill.source}: {skill.path}, sha256 {digest[:16]})"]
    shadowed = found.shadowed(skill.name)
    if shadowed is not None:
        lines.append(f"(this {skill.source} skill is used because {shadowed})")
    lines += ["", _capped(skill.body.strip(), context.limits.read_cap_bytes)]
    files = skill.files()
    if files:
        lines += [
            "",
            f"Files beside it, in {skill.folder} (read one with load_skill and `file`):",
            *(f"- {f}" for f in files),
        ]
    return Reply("\n".join(lines))


def _skill_file(folder: Path, name: str, cap: int) -> str:
    """The text of ``name`` in the skill's ``folder``, after symlinks and ``..``
    are resolved, compared by path components (never a string prefix).

    Raises:
        ToolError: it resolves outside ``folder``, is not a file, or is not UTF-8.
    """
    root = folder.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root) or path == root:
        raise ToolError(f"{name!r} is not inside the skill's folder; pick one load_skill lists")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ToolError(f"{name!r} is not UTF-8 text; run it, or read it with run_shell") from exc
    except OSError as exc:
        raise ToolError(f"cannot read {name!r}: {exc.strerror or exc}") from exc
    return f"# {path}\n\n{_capped(text, cap)}"


def _capped(body: str, cap: int) -> str:
    """``body`` cut to ``cap`` bytes of UTF-8 (the ``read_cap_bytes`` limit
    ``read_file`` also keeps), with a note saying where the rest is."""
    encoded = body.encode()
    if len(encoded) <= cap:
        return body
    kept = encoded[:cap].decode(errors="ignore")
    return f"{kept}\n[... cut at {cap} bytes of {len(encoded)}; read the SKILL.md for the rest]"


SKILL_TOOLS = (
    Tool(
        "load_skill",
        "Read a skill's full instructions (and list its files) by its name, from the "
        "list of skills in your instructions. Load one when it fits the task; give "
        "`file` to read one of the files it lists.",
        LoadSkillArgs,
        load_skill,
    ),
)
