"""Walking a workspace the way git sees it: .gitignore honoured, .git/ and .gm/ skipped."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from pathspec import GitIgnoreSpec

__all__ = ["SKIPPED_DIRS", "walk_entries", "walk_files"]

SKIPPED_DIRS = frozenset({".gm", ".git"})
"""Directories never walked: gm's own state and git's."""


def walk_files(root: Path, start: Path | None = None) -> Iterator[Path]:
    """Regular files under ``start`` (default ``root``); see :func:`walk_entries`."""
    for path, _ in walk_entries(root, start):
        yield path


def walk_entries(
    root: Path, start: Path | None = None, *, follow_links: bool = True
) -> Iterator[tuple[Path, os.stat_result]]:
    """Regular files under ``start`` (default ``root``) with their stat, sorted per directory.

    Skips ``.gm/`` and ``.git/`` at any depth, what ``.gitignore`` files exclude
    (those of ``start``'s ancestors up to ``root`` and those met on the way, as git
    reads them, via pathspec), and anything that is not a regular file whose real
    location is inside ``root``: FIFOs, devices, symlinks leading out (all
    symlinks with ``follow_links=False``: their targets are walked anyway).
    Directory symlinks are not followed. One ``scandir`` per directory; a plain file costs
    no extra system call.
    """
    start = start or root
    specs: list[tuple[Path, GitIgnoreSpec]] = []
    for ancestor in [*reversed(start.relative_to(root).parents), start.relative_to(root)]:
        gitignore = root / ancestor / ".gitignore"
        if gitignore.is_file() and root / ancestor != start:
            specs.append((root / ancestor, _load_gitignore(gitignore)))
    if start.is_file():
        found = _regular_inside(root, start)
        if found is not None and not _ignored(specs, start, is_dir=False):
            yield start, found
        return
    yield from _walk_dir(root, start, specs, follow_links)


def _walk_dir(
    root: Path, directory: Path, specs: list[tuple[Path, GitIgnoreSpec]], follow_links: bool
) -> Iterator[tuple[Path, os.stat_result]]:
    try:
        with os.scandir(directory) as scan:
            entries = sorted(scan, key=lambda e: e.name)
    except OSError:
        return
    if any(e.name == ".gitignore" and e.is_file() for e in entries):
        specs = [*specs, (directory, _load_gitignore(directory / ".gitignore"))]
    for entry in entries:
        path = directory / entry.name
        if entry.is_dir(follow_symlinks=False):
            if entry.name not in SKIPPED_DIRS and not _ignored(specs, path, is_dir=True):
                yield from _walk_dir(root, path, specs, follow_links)
        elif not _ignored(specs, path, is_dir=False):
            if entry.is_file(follow_symlinks=False):
                yield path, entry.stat(follow_symlinks=False)
            elif follow_links and entry.is_symlink():
                found = _regular_inside(root, path)
                if found is not None:
                    yield path, found


def _ignored(specs: list[tuple[Path, GitIgnoreSpec]], path: Path, *, is_dir: bool) -> bool:
    for base, spec in specs:
        relative = path.relative_to(base).as_posix() + ("/" if is_dir else "")
        if spec.match_file(relative):
            return True
    return False


def _regular_inside(root: Path, path: Path) -> os.stat_result | None:
    """The stat of ``path``'s target if it is a regular file inside ``root``, else None:
    never a FIFO, a device, or a symlink that leads out of the workspace."""
    try:
        real = Path(os.path.realpath(path))
        info = real.stat()
    except OSError:
        return None
    return info if real.is_relative_to(root) and stat.S_ISREG(info.st_mode) else None


def _load_gitignore(path: Path) -> GitIgnoreSpec:
    return GitIgnoreSpec.from_lines(path.read_text(encoding="utf-8", errors="replace").splitlines())
