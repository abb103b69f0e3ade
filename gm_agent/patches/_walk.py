"""Walking a workspace the way git sees it: .gitignore honoured, .git/ and .gm/ skipped."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from pathspec import GitIgnoreSpec

__all__ = ["SKIPPED_DIRS", "walk_files"]

SKIPPED_DIRS = frozenset({".gm", ".git"})
"""Directories never walked: gm's own state and git's."""


def walk_files(root: Path, start: Path | None = None) -> Iterator[Path]:
    """Regular files under ``start`` (default ``root``), sorted per directory.

    Skips ``.gm/`` and ``.git/``, what ``.gitignore`` files exclude (those of
    ``start``'s ancestors up to ``root`` and those met on the way, as git reads
    them, via pathspec), and anything that is not a regular file whose real
    location is inside ``root``: FIFOs, devices, symlinks leading out.
    """
    start = start or root
    specs: list[tuple[Path, GitIgnoreSpec]] = []

    def ignored(path: Path, is_dir: bool) -> bool:
        for base, spec in specs:
            if path.is_relative_to(base):
                relative = path.relative_to(base).as_posix() + ("/" if is_dir else "")
                if spec.match_file(relative):
                    return True
        return False

    for ancestor in [*reversed(start.relative_to(root).parents), start.relative_to(root)]:
        gitignore = root / ancestor / ".gitignore"
        if gitignore.is_file():
            specs.append((root / ancestor, _load_gitignore(gitignore)))
    if start.is_file():
        if _is_regular_inside(root, start):
            yield start
        return
    for current, dirs, files in os.walk(start):
        here = Path(current)
        if (here / ".gitignore").is_file() and here != start:
            specs.append((here, _load_gitignore(here / ".gitignore")))
        dirs[:] = sorted(
            d for d in dirs if d not in SKIPPED_DIRS and not ignored(here / d, is_dir=True)
        )
        for name in sorted(files):
            if not ignored(here / name, is_dir=False) and _is_regular_inside(root, here / name):
                yield here / name


def _is_regular_inside(root: Path, path: Path) -> bool:
    """A regular file whose real location is inside ``root``: never a FIFO, a device, or a
    symlink that leads out of the workspace."""
    try:
        real = Path(os.path.realpath(path))
        return real.is_relative_to(root) and stat.S_ISREG(real.stat().st_mode)
    except OSError:
        return False


def _load_gitignore(path: Path) -> GitIgnoreSpec:
    return GitIgnoreSpec.from_lines(path.read_text(encoding="utf-8", errors="replace").splitlines())
