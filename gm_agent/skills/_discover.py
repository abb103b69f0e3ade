"""Finding skills: the folders searched, in precedence order, and the set found."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from gm_agent.errors import SkillError
from gm_agent.settings import GM_DIR
from gm_agent.skills._parse import parse_skill
from gm_agent.skills._skill import SKILL_FILE, Skill, SkillSource

__all__ = ["BUILTIN_DIR", "SkillSet", "discover_in", "discover_skills", "skill_dirs"]

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
"""The skills shipped with gm_agent (inside the package, so the wheel carries them)."""


def skill_dirs(workspace: Path, environ: Mapping[str, str]) -> list[tuple[SkillSource, Path]]:
    """The folders skills are looked for in, first one wins; they need not exist.

    1. ``project``: ``<workspace>/.gm/skills/``
    2. ``user``: ``$XDG_CONFIG_HOME/gm/skills/``, or ``$HOME/.config/gm/skills/``
       when ``XDG_CONFIG_HOME`` is unset, empty or relative (the XDG Base
       Directory Specification); left out when neither is set.
    3. ``builtin``: the skills shipped in ``gm_agent/skills/builtin/``.

    Args:
        workspace: the project directory.
        environ: the environment to read ``XDG_CONFIG_HOME`` and ``HOME`` from.

    Returns:
        ``(source, folder)`` pairs in precedence order.
    """
    found: list[tuple[SkillSource, Path]] = [("project", workspace / GM_DIR / "skills")]
    config = environ.get("XDG_CONFIG_HOME", "")
    if not Path(config).is_absolute():
        home = environ.get("HOME", "")
        config = str(Path(home) / ".config") if Path(home).is_absolute() else ""
    if config:
        found.append(("user", Path(config) / "gm" / "skills"))
    found.append(("builtin", BUILTIN_DIR))
    return found


@dataclass(frozen=True)
class SkillSet:
    """The skills found, and the ones that could not be used.

    Attributes:
        skills: the valid skills, by name; a name in several folders is taken
            from the first (project, then user, then builtin).
        problems: one :class:`~gm_agent.errors.SkillError` per folder that is
            not a valid skill, in search order. A broken skill does not hide
            a valid one of the same name further down.
        searched: the folders looked in, as :func:`skill_dirs` gives them.
    """

    skills: tuple[Skill, ...] = ()
    problems: tuple[SkillError, ...] = ()
    searched: tuple[tuple[SkillSource, Path], ...] = ()

    def __iter__(self) -> Iterator[Skill]:
        return iter(self.skills)

    def __len__(self) -> int:
        return len(self.skills)

    def names(self) -> list[str]:
        """The valid skills' names, sorted."""
        return [skill.name for skill in self.skills]

    def get(self, name: str) -> Skill:
        """The skill called ``name``.

        Raises:
            SkillError: a folder of that name is not a valid skill (its own
                error), or no skill has the name (the message lists the known ones).
        """
        for skill in self.skills:
            if skill.name == name:
                return skill
        for problem in self.problems:
            if problem.path is not None and _folder_name(Path(problem.path)) == name:
                raise problem
        known = ", ".join(self.names()) or "none"
        raise SkillError(
            f"no skill is called {name!r} (known skills: {known}); "
            "`gm skills list` shows them and where they come from"
        )

    def shadowed(self, name: str) -> SkillError | None:
        """Why the skill ``name`` comes from further down the search order than
        it should: the error of a broken folder of that name in a folder
        searched earlier (a broken project skill falls back to the built-in of
        its name), else ``None``."""
        skill = next((s for s in self.skills if s.name == name), None)
        if skill is None:
            return None
        order = [root for _, root in self.searched]
        chosen = next((i for i, root in enumerate(order) if skill.path.is_relative_to(root)), 0)
        for problem in self.problems:
            if problem.path is None or _folder_name(Path(problem.path)) != name:
                continue
            where = [i for i, root in enumerate(order) if Path(problem.path).is_relative_to(root)]
            if where and where[0] < chosen:
                return problem
        return None


def discover_skills(workspace: Path, environ: Mapping[str, str]) -> SkillSet:
    """Every skill in the folders of :func:`skill_dirs`.

    A skill is a sub-folder holding a ``SKILL.md`` (the agentskills.io
    specification). Hidden folders and ``__pycache__`` are skipped; a folder
    without ``SKILL.md`` is reported as a problem.

    Args:
        workspace: the project directory.
        environ: the environment (``XDG_CONFIG_HOME``, ``HOME``).

    Returns:
        The valid skills sorted by name, and the problems: nothing raises for
        one bad skill.
    """
    return discover_in(skill_dirs(workspace, environ))


def discover_in(searched: Iterable[tuple[SkillSource, Path]]) -> SkillSet:
    """Every skill in the folders ``searched`` (``(source, folder)`` pairs in
    precedence order, as :func:`skill_dirs` gives them): see :func:`discover_skills`."""
    searched = tuple(searched)
    chosen: dict[str, Skill] = {}
    problems: list[SkillError] = []
    seen: set[Path] = set()
    for source, root in searched:
        if root.resolve() in seen:
            continue
        seen.add(root.resolve())
        for folder in _folders(root, problems):
            try:
                skill = _load(folder, source)
            except SkillError as exc:
                problems.append(exc)
                continue
            chosen.setdefault(skill.name, skill)
    skills = tuple(sorted(chosen.values(), key=lambda s: s.name))
    return SkillSet(skills, tuple(problems), tuple(searched))


def _folders(root: Path, problems: list[SkillError]) -> list[Path]:
    """The skill folders in ``root`` (none when it does not exist), sorted by name."""
    try:
        entries = sorted(root.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        problems.append(SkillError(f"cannot list the skills folder: {exc}", path=str(root)))
        return []
    return [
        entry
        for entry in entries
        if not entry.name.startswith(".") and entry.name != "__pycache__" and entry.is_dir()
    ]


def _load(folder: Path, source: SkillSource) -> Skill:
    """The skill in ``folder``.

    Raises:
        SkillError: the folder has no ``SKILL.md``, or it is not valid.
    """
    if not (folder / SKILL_FILE).is_file():
        raise SkillError(
            f"no {SKILL_FILE} here: a skill is a folder holding a file named {SKILL_FILE} "
            "(in capitals); add one or move the folder out",
            path=str(folder),
        )
    return parse_skill(folder / SKILL_FILE, source)


def _folder_name(path: Path) -> str:
    """The skill name a problem's path stands for: its folder's name."""
    return path.parent.name if path.name == SKILL_FILE else path.name
