"""The skill catalogue: what the model sees of each skill before it loads one."""

from __future__ import annotations

from collections.abc import Iterable

from gm_agent.skills._skill import Skill

__all__ = ["MAX_CATALOG_CHARS", "catalog"]

MAX_CATALOG_CHARS = 16_000
"""The catalogue's size cap in characters (about 4,000 tokens): every run pays
for it in its prompt, so many or long-winded skills must not crowd the task out."""

_INTRO = (
    "Skills (instructions for particular kinds of work): when one fits the task, "
    "call `load_skill` with its name to read it before you start."
)


def catalog(skills: Iterable[Skill], max_chars: int = MAX_CATALOG_CHARS) -> str:
    """The skills as a compact block for the system prompt.

    Only names and descriptions are shown: the agentskills.io specification's
    "progressive disclosure", where the body is read when the skill is loaded.

    Args:
        skills: the skills to list, in the order given.
        max_chars: the cap; the skills past it are counted, not listed, and
            still load by name.

    Returns:
        A one-line intro naming the ``load_skill`` tool, then one line per skill,
        ``- name: description`` (the description's whitespace collapsed to
        single spaces). The empty string when there are no skills.
    """
    lines = [f"- {skill.name}: {' '.join(skill.description.split())}" for skill in skills]
    if not lines:
        return ""
    kept, size = [_INTRO], len(_INTRO)
    for index, line in enumerate(lines):
        if size + len(line) + 1 > max_chars:
            kept.append(f"- ... and {len(lines) - index} more, not listed (the list is capped)")
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept)
