"""Skills: ``SKILL.md`` folders (the agentskills.io format) the model loads for
procedural knowledge (see ``docs/skills.md``).

A skill is found in the workspace's ``.gm/skills/``, the user's
``~/.config/gm/skills/`` or among the built-ins; the model sees a
:func:`catalog` of names and descriptions and reads a skill's body when it
needs it.
"""

from __future__ import annotations

from gm_agent.skills._catalog import catalog
from gm_agent.skills._discover import (
    BUILTIN_DIR,
    SkillSet,
    discover_in,
    discover_skills,
    skill_dirs,
)
from gm_agent.skills._parse import (
    MAX_COMPATIBILITY,
    MAX_DESCRIPTION,
    MAX_NAME,
    check_skill_name,
    draft_name,
    parse_skill,
)
from gm_agent.skills._skill import FILES_LIMIT, SKILL_FILE, Skill, SkillSource

__all__ = [
    "BUILTIN_DIR",
    "FILES_LIMIT",
    "MAX_COMPATIBILITY",
    "MAX_DESCRIPTION",
    "MAX_NAME",
    "SKILL_FILE",
    "Skill",
    "SkillSet",
    "SkillSource",
    "catalog",
    "check_skill_name",
    "discover_in",
    "discover_skills",
    "draft_name",
    "parse_skill",
    "skill_dirs",
]
