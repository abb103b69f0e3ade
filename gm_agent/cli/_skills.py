"""``gm skills list`` and ``gm skills show``: the skills a run can load."""

from __future__ import annotations

import os
import shutil
import sys
from typing import TYPE_CHECKING

import click

from gm_agent.cli._support import exits_on_errors, workspace_of

if TYPE_CHECKING:
    from gm_agent.skills import Skill, SkillSet


@click.group()
def skills() -> None:
    """The skills runs can load: SKILL.md folders (the agentskills.io format)
    in .gm/skills/, ~/.config/gm/skills/ and built into gm, first one wins."""


@skills.command("list")
@click.pass_context
def list_skills(ctx: click.Context) -> None:
    """List the skills: name, where it comes from, description.

    Folders that are not valid skills are named on stderr with the reason;
    they do not hide the others, and the exit code stays 0.
    """
    from gm_agent.skills import discover_skills

    found = discover_skills(workspace_of(ctx), os.environ)
    width = shutil.get_terminal_size((100, 24)).columns
    for line in _table(found, width):
        click.echo(line)
    if not found.skills:
        places = ", ".join(str(folder) for _, folder in found.searched)
        click.echo(f"gm: no skills found in {places}", err=True)
    for problem in found.problems:
        click.echo(f"gm: not a valid skill, left out: {problem}", err=True)


@skills.command()
@click.argument("name")
@click.pass_context
def show(ctx: click.Context, name: str) -> None:
    """Show skill NAME: its front matter, where it is, its instructions and
    the files beside it.

    Exit code 2 when no valid skill has that name.
    """
    from gm_agent.skills import FILES_LIMIT, discover_skills

    with exits_on_errors():
        found = discover_skills(workspace_of(ctx), os.environ)
        skill = found.get(name)
    shadowed = found.shadowed(name)
    if shadowed is not None:
        click.echo(f"gm: the {skill.source} skill is used, because {shadowed}", err=True)
    for line in _front(skill):
        click.echo(line)
    click.echo()
    click.echo(skill.body or "(no instructions below the front matter)")
    files = skill.files(FILES_LIMIT + 1)
    if files:
        click.echo()
        click.echo(f"Files beside {skill.path.name}:")
        for path in files[:FILES_LIMIT]:
            click.echo(f"  {path}")
        if len(files) > FILES_LIMIT:
            click.echo(f"  ... (only the first {FILES_LIMIT} are listed)")


def _table(found: SkillSet, width: int) -> list[str]:
    """One line per skill, the description cut to fit ``width`` columns."""
    if not found.skills:
        return []
    name_width = max(len("NAME"), *(len(skill.name) for skill in found))
    prefix = f"{{:<{name_width}}}  {{:<7}}  "
    room = max(width - name_width - 11, 20)
    lines = [prefix.format("NAME", "SOURCE") + "DESCRIPTION"]
    for skill in found:
        description = " ".join(skill.description.split())
        if len(description) > room:
            description = description[: room - 1].rstrip() + "…"
        lines.append(prefix.format(skill.name, skill.source) + description)
    return lines


def _front(skill: Skill) -> list[str]:
    """The skill's front matter as ``key: value`` lines, with its source and path."""
    lines = [
        f"name: {skill.name}",
        f"source: {skill.source}",
        f"path: {skill.path}",
        f"description: {' '.join(skill.description.split())}",
    ]
    if skill.license:
        lines.append(f"license: {skill.license}")
    if skill.compatibility:
        lines.append(f"compatibility: {' '.join(skill.compatibility.split())}")
    if skill.allowed_tools:
        lines.append(f"allowed-tools: {' '.join(skill.allowed_tools)}")
    if skill.metadata:
        lines.append("metadata:")
        lines.extend(f"  {key}: {value}" for key, value in skill.metadata.items())
    return lines


@skills.command("learn")
@click.argument("run_ref", metavar="[RUN]", default="last")
@click.option("--name", help="The skill's name (lowercase words with hyphens); else the model's.")
@click.option("--model", help="The model that writes it (default: the run's own).")
@click.option("--yes", "-y", is_flag=True, help="Save it without asking (for scripts).")
@click.option("--force", is_flag=True, help="Replace a project skill of the same name.")
@click.pass_context
def learn(
    ctx: click.Context, run_ref: str, name: str | None, model: str | None, yes: bool, force: bool
) -> None:
    """Draft a skill from RUN (default `last`), a run that succeeded.

    The model reads the run's transcript and writes a SKILL.md capturing the
    procedure that worked. It is checked, shown, and saved to
    .gm/skills/NAME/SKILL.md only when you accept (or with --yes).
    """
    from gm_agent._learn import draft_skill, save_skill
    from gm_agent.cli._support import run_async

    workspace = workspace_of(ctx)
    draft = run_async(lambda: draft_skill(workspace, run_ref, os.environ, name=name, model=model))
    click.echo(draft.text, nl=False)
    shown = draft.skill.path.relative_to(workspace)
    if not yes and not sys.stdin.isatty():
        click.echo(f"gm: not saved (no terminal to ask); --yes saves it as {shown}", err=True)
        return
    if not yes and not click.confirm(f"gm: save it as {shown}?", default=False, err=True):
        click.echo("gm: not saved", err=True)
        return
    with exits_on_errors():
        path = save_skill(draft, force=force)
    click.echo(
        f"gm: saved {path.relative_to(workspace)}; `gm skills show {draft.skill.name}`", err=True
    )
