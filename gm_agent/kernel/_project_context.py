"""Project context files: the instructions a project keeps for agents.

``AGENTS.md`` (Codex, and the agents.md convention), ``CLAUDE.md`` (Claude
Code), ``GEMINI.md`` (Gemini CLI) and ``GM.md`` (gm) are read in every
directory from the workspace root down to the working directory, farthest
first, so the nearer file has the last word. A file that is a copy or symlink
of one already read is read once.

``@path`` in a file imports another file, as in Claude Code and Gemini CLI: the
path is relative to the importing file, must stay inside the workspace, and is
ignored inside code (fenced blocks and inline code spans); an ``@word`` that
names no file is left as text (a handle, an email). Files under ``.git/`` or
``.gm/`` and ``.env`` files are never read (a remote URL in ``.git/config`` may
hold a token). Imports nest up to
:data:`MAX_IMPORT_DEPTH` deep (Claude Code's limit) and each file is read once.

The whole section is capped at ``max_bytes``; the farthest files are cut first.
What was read, cut or skipped is journaled as ``context.loaded`` with the text
the model sees, so a resumed run sees what the first process saw.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from gm_agent.events import ContextFile, ContextLoaded
from gm_agent.settings import CONTEXT_FILE_NAMES

__all__ = ["MAX_IMPORT_DEPTH", "load_project_context"]

MAX_IMPORT_DEPTH = 5
"""How deep ``@path`` imports nest (Claude Code's documented limit)."""

HEADER = (
    "# Project instructions\n"
    "These files from the project say how to work in it. Where they disagree, "
    "the later one (nearer the working directory) wins."
)

_CODE = re.compile(r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)|`[^`\n]*`", re.DOTALL)
_IMPORT = re.compile(r"(?<![\w@`])@([\w.~/-]*[\w/-])")


@dataclass
class _Found:
    path: str  # relative to the workspace, POSIX
    text: str
    sha256: str
    imported_by: str | None = None
    truncated: bool = False


PRIVATE_PARTS = (".git", ".gm")
"""Directories an import never reads from (a remote URL in ``.git/config`` may hold
a token; ``.gm/`` is gm's own); ``.env`` files are refused too."""


def _private(relative: str) -> bool:
    parts = relative.split("/")
    return any(p in PRIVATE_PARTS for p in parts) or parts[-1].startswith(".env")


@dataclass
class _Reader:
    workspace: Path
    limit: int
    found: list[_Found] = field(default_factory=list[_Found])
    skipped: list[str] = field(default_factory=list[str])
    seen_files: set[Path] = field(default_factory=set[Path])
    seen_digests: set[str] = field(default_factory=set[str])

    def read(self, path: Path, imported_by: str | None, depth: int) -> None:
        """Read ``path`` (absolute, inside the workspace) and then its imports."""
        real = path.resolve()
        relative = path.relative_to(self.workspace).as_posix()
        if real in self.seen_files:
            return
        self.seen_files.add(real)
        if not real.is_relative_to(self.workspace):
            self.skipped.append(f"{relative}: a link out of the workspace")
            return
        if _private(real.relative_to(self.workspace).as_posix()):
            self.skipped.append(f"{relative}: private (.git/, .gm/ and .env files are never read)")
            return
        try:
            with real.open("rb") as file:
                raw = file.read(self.limit + 1)  # the cap cuts it anyway
        except OSError as exc:
            self.skipped.append(f"{relative}: cannot be read ({exc.strerror or exc})")
            return
        digest = hashlib.sha256(raw).hexdigest()
        if digest in self.seen_digests:
            return  # CLAUDE.md as a copy of AGENTS.md: once is enough
        self.seen_digests.add(digest)
        text = raw.decode("utf-8", errors="replace").strip()
        self.found.append(_Found(relative, text, digest, imported_by))
        for target in _imports(text):
            self.follow(path.parent, target, relative, depth + 1)

    def follow(self, base: Path, target: str, importer: str, depth: int) -> None:
        """Follow ``@target`` found in ``importer`` (whose directory is ``base``)."""
        candidate = (base / Path(target).expanduser()).resolve()
        if not candidate.is_file():
            return  # an @handle or an email, not a file
        if not candidate.is_relative_to(self.workspace):
            self.skipped.append(f"@{target} in {importer}: outside the workspace")
            return
        if depth > MAX_IMPORT_DEPTH:
            self.skipped.append(
                f"@{target} in {importer}: imports nest deeper than {MAX_IMPORT_DEPTH}"
            )
            return
        self.read(candidate, importer, depth)


def _imports(text: str) -> list[str]:
    """The ``@path`` targets in ``text``, outside code, in order."""
    return _IMPORT.findall(_CODE.sub(" ", text))


def _directories(workspace: Path, cwd: Path) -> list[Path]:
    """The workspace root, then each directory down to ``cwd`` (if inside it)."""
    cwd = cwd.resolve()
    if not cwd.is_relative_to(workspace):
        return [workspace]
    chain = [workspace]
    for part in cwd.relative_to(workspace).parts:
        chain.append(chain[-1] / part)
    return chain


def _section(found: _Found) -> str:
    title = found.path + (f" (imported by {found.imported_by})" if found.imported_by else "")
    return f"## {title}\n\n{found.text}"


def _cap(found: list[_Found], max_bytes: int) -> tuple[list[_Found], list[str]]:
    """Keep the nearest files within ``max_bytes``; cut the one that straddles it."""
    kept: list[_Found] = []
    skipped: list[str] = []
    room = max_bytes - len(HEADER.encode())
    for item in reversed(found):  # nearest first
        size = len(_section(item).encode()) + 2
        if size <= room:
            kept.append(item)
            room -= size
        elif room > 200:
            cut = item.text.encode()[: room - 200].decode("utf-8", errors="ignore")
            marker = f"\n[... cut by gm: the project context is capped at {max_bytes} bytes]"
            item.text, item.truncated = cut + marker, True
            kept.append(item)
            room = 0
        else:
            skipped.append(f"{item.path}: over the {max_bytes}-byte cap for project context")
    return list(reversed(kept)), skipped


def load_project_context(
    workspace: Path,
    cwd: Path,
    *,
    names: tuple[str, ...] = CONTEXT_FILE_NAMES,
    max_bytes: int = 32_768,
) -> ContextLoaded | None:
    """Read the project context files for a run in ``workspace`` started from ``cwd``.

    Args:
        workspace: the project directory (absolute, resolved).
        cwd: the working directory; directories from ``workspace`` down to it
            are searched (only ``workspace`` when ``cwd`` is outside it).
        names: file names to look for in each directory, in order.
        max_bytes: cap on the section's size in bytes (UTF-8); 0 reads nothing.

    Returns:
        The ``context.loaded`` payload, or ``None`` when no file was found.
        Unreadable files and refused imports are listed in ``skipped``; this
        never raises for a file's content.
    """
    if max_bytes <= 0:
        return None
    reader = _Reader(workspace, max_bytes)
    for directory in _directories(workspace, cwd):
        for name in names:
            path = directory / name
            if path.is_file():
                reader.read(path, None, 0)
    if not reader.found and not reader.skipped:
        return None
    kept, over = _cap(reader.found, max_bytes)
    text = "\n\n".join([HEADER, *(_section(f) for f in kept)]) if kept else ""
    files = tuple(
        ContextFile(
            path=f.path,
            sha256=f.sha256,
            bytes=len(f.text.encode()),
            imported_by=f.imported_by,
            truncated=f.truncated,
        )
        for f in kept
    )
    return ContextLoaded(files=files, text=text, skipped=(*reader.skipped, *over))
