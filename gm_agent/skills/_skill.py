"""A skill: one folder with a ``SKILL.md`` (the agentskills.io format)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

__all__ = ["FILES_LIMIT", "SKILL_FILE", "Skill", "SkillSource"]

SKILL_FILE = "SKILL.md"

SkillSource = Literal["project", "user", "builtin"]
"""Where a skill was found: the workspace's ``.gm/skills/``, the user's config
folder, or the skills shipped with gm_agent."""

FILES_LIMIT = 200
"""Most entries :meth:`Skill.files` lists by default: a skill folder holding a
whole project (a ``node_modules/``) must not flood a prompt or a terminal."""

_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules"})


@dataclass(frozen=True, slots=True)
class Skill:
    """A parsed, valid skill.

    The fields follow the agentskills.io specification
    (https://agentskills.io/specification): ``name`` and ``description`` are
    required, the rest optional. Build one with :func:`parse_skill`, which
    enforces the specification's limits.

    Attributes:
        name: 1-64 characters of ``a-z``, ``0-9`` and single inner hyphens;
            equal to the folder's name.
        description: what the skill does and when to use it, 1-1024 characters.
        path: the ``SKILL.md`` file (absolute when discovered).
        source: which skill folder it came from.
        body: the Markdown instructions after the front matter, stripped.
        license: a license name or the name of a license file in the folder.
        compatibility: environment requirements, at most 500 characters.
        metadata: extra string keys and values the specification leaves to clients.
        allowed_tools: tools the skill expects to use (experimental in the
            specification; gm_agent records them but does not enforce them).
    """

    name: str
    description: str
    path: Path
    source: SkillSource
    body: str
    license: str | None = None
    compatibility: str | None = None
    metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    allowed_tools: tuple[str, ...] = ()

    @property
    def folder(self) -> Path:
        """The skill's folder: the parent of ``SKILL.md``."""
        return self.path.parent

    def files(self, limit: int = FILES_LIMIT) -> list[str]:
        """The other files in the skill's folder (``scripts/``, ``references/``, ...).

        Args:
            limit: the most paths returned. A longer listing is cut: the folder
                is walked top-down in name order, so the same entries are kept
                every time.

        Returns:
            Paths relative to the folder, POSIX style, sorted; without
            ``SKILL.md`` itself, hidden files and folders (a leading dot),
            ``__pycache__`` and ``node_modules``. Symbolic links to folders are
            not followed.
        """
        root = self.folder
        found: list[str] = []
        # Walk in a fixed order and stop once past the limit: a huge folder costs little.
        for here, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS)
            relative = Path(here).relative_to(root)
            for name in sorted(names):
                if name.startswith(".") or (relative == Path() and name == SKILL_FILE):
                    continue
                found.append((relative / name).as_posix())
            if len(found) > limit:
                break
        return sorted(found)[:limit]
