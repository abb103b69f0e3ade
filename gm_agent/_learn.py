"""``gm skills learn``: a successful run distilled into a SKILL.md, written by the model.

The run's journal, as the Markdown transcript ``gm export`` prints, goes to a
model with instructions to capture the procedure that worked (the steps, tools
and checks) in the agentskills.io ``SKILL.md`` format. The draft is checked
with the same parser as every skill (:func:`gm_agent.skills.parse_skill`) before
anyone sees it; the caller shows it and writes it to ``.gm/skills/NAME/`` only
when the user accepts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gm_agent._export import markdown_transcript
from gm_agent.errors import SkillError, UserError
from gm_agent.journal import Journal
from gm_agent.kernel import history
from gm_agent.llm import Message, ModelRequest, make_model
from gm_agent.settings import GM_DIR, load_settings
from gm_agent.skills import Skill, check_skill_name, draft_name, parse_skill

__all__ = ["MAX_TRANSCRIPT_CHARS", "SkillDraft", "draft_skill", "save_skill"]

MAX_TRANSCRIPT_CHARS = 60_000
"""The transcript sent to the model is cut to its head and tail past this many characters."""

INSTRUCTIONS = """\
You write agent skills in the agentskills.io SKILL.md format, from the transcript \
of a run that succeeded. Capture the procedure that worked so another agent can \
repeat it on a similar task: the steps in order, the tools and commands used, the \
checks that proved it worked, and the pitfalls the run met. Generalise: no \
one-off file names or values unless they are the point. Be concise (under 60 lines).

Answer with the SKILL.md file only, nothing before or after it:
---
name: {name_rule}
description: one sentence saying what the skill does and when to use it (under 300 characters)
---
# Title

Markdown instructions.
"""
"""The system prompt of the model writing the skill; ``{name_rule}`` is the
name asked for, or the naming rule (agentskills.io specification, "name field")."""


@dataclass(frozen=True)
class SkillDraft:
    """A SKILL.md the model wrote from run ``run_id``, parsed as ``skill`` (its
    ``path`` is where it would be saved)."""

    run_id: str
    text: str
    skill: Skill


async def draft_skill(
    workspace: Path,
    run_ref: str,
    environ: Mapping[str, str],
    *,
    name: str | None = None,
    model: str | None = None,
) -> SkillDraft:
    """Ask a model to write a SKILL.md capturing what run ``run_ref`` did.

    Args:
        workspace: the project directory.
        run_ref: a run id, a unique prefix, or ``last``; the run must have succeeded.
        environ: settings and API keys.
        name: the skill's name (else the model picks one).
        model: the model to write it (else the run's own).

    Returns:
        The draft, checked as a skill would be.

    Raises:
        UserError: ``name`` is not a skill name, the run did not succeed, or the
            model's answer is not a valid SKILL.md (the message quotes the
            problem; nothing is written).
        ModelError: the model could not answer.
    """
    if name is not None:
        check_skill_name(name)  # before a model is paid for
    settings = load_settings(workspace, environ)
    async with await Journal.open(settings.journal_path, read_only=True) as journal:
        run_id = await journal.resolve_run(run_ref)
        row = await journal.get_run(run_id)
        if row.status != "succeeded":
            raise UserError(
                f"run {run_id} {row.status}; only a run that succeeded is worth a skill"
            )
        transcript = _cut(markdown_transcript(await history(journal, run_id)))
    llm = make_model(model or row.model, settings, environ, base_dir=workspace)
    rule = f"{name}" if name else "lowercase-words-with-hyphens, at most 64 characters"
    request = ModelRequest(
        messages=(
            Message(role="system", text=INSTRUCTIONS.format(name_rule=rule)),
            Message(role="user", text=f"The run's transcript:\n\n{transcript}"),
        ),
        step=1,
    )
    try:
        move = await llm.request(request)
    finally:
        await llm.aclose()
    text = _unfenced(move.text)
    return SkillDraft(run_id, text, _checked(workspace, text, name))


def _cut(text: str) -> str:
    if len(text) <= MAX_TRANSCRIPT_CHARS:
        return text
    half = MAX_TRANSCRIPT_CHARS // 2
    return f"{text[:half]}\n\n[... {len(text) - 2 * half} characters cut ...]\n\n{text[-half:]}"


def _unfenced(text: str) -> str:
    """The answer without a Markdown code fence around it, if the model added one."""
    fenced = re.fullmatch(r"\s*(`{3,}|~{3,})[\w-]*\n(.*)\n\1\s*", text, flags=re.DOTALL)
    return (fenced.group(2) if fenced else text.strip()) + "\n"


def _checked(workspace: Path, text: str, name: str | None) -> Skill:
    """``text`` parsed as ``.gm/skills/NAME/SKILL.md``, with nothing written.

    The folder is ``name``, else the front matter's name once it is known to
    be a valid skill name: never a path the model's answer could point elsewhere.

    Raises:
        UserError: it is not a valid skill, or not called ``name``.
    """
    folder = name or draft_name(text) or "unnamed"
    path = workspace / GM_DIR / "skills" / folder / "SKILL.md"
    try:
        return parse_skill(path, "project", text=text)
    except SkillError as exc:
        if name is not None and draft_name(text) not in (None, name):
            raise UserError(
                f"the model named the skill {draft_name(text)!r}, not {name!r}; try again"
            ) from exc
        raise UserError(
            f"the model's SKILL.md is not valid ({exc}); nothing was written. "
            f"Its answer was:\n{text}"
        ) from exc


def save_skill(draft: SkillDraft, *, force: bool = False) -> Path:
    """Write the draft to its ``.gm/skills/NAME/SKILL.md``; the path.

    Raises:
        UserError: a skill of that name is already there (without ``force``),
            or the file could not be written (a full disk, no permission).
    """
    path = draft.skill.path
    if path.exists() and not force:
        raise UserError(f"{str(path)!r} exists; pick another --name, or pass --force")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(draft.text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from exc
    return path
