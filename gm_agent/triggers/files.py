"""File-change triggers: which workspace paths count, and settled bursts of their changes.

`gm serve` and `gm run task.md --watch` start a run when files matching a trigger's
patterns change. :class:`ChangeFilter` decides which paths count (the patterns, minus
gm's and git's own directories and whatever the workspace's ``.gitignore`` files ignore);
:func:`watch_changes` turns the operating system's file events (``watchfiles``, Rust
``notify`` underneath) into one batch of paths per burst of changes, once the burst
has settled, without the changes the agent made itself.

``watchfiles``' own ``debounce`` is a cap, not a quiet period: it hands over what it
has once the set of changed paths stopped growing for one ``step`` (or ``debounce`` ms
after the first change, whichever comes first), so a steady stream of writes comes out
as a batch every ``step`` or two. :func:`watch_changes` merges those batches until none
has arrived for ``debounce_ms``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Sequence,
)
from contextlib import aclosing
from pathlib import Path
from typing import cast

import anyio
import anyio.to_thread
from pathspec import GitIgnoreSpec

# watchfiles' types name trio.Event, and trio is not installed: awatch's type is partly unknown.
from watchfiles import Change, awatch  # pyright: ignore[reportUnknownVariableType]

__all__ = ["ChangeFilter", "OwnWriteCheck", "watch_changes"]

OwnWriteCheck = Callable[[str, str | None], Awaitable[bool]]
"""(workspace-relative POSIX path, sha256 hex of its current content or None if it no
longer exists) -> True when that content is exactly what the agent itself last wrote there
(so the change is the agent's own and must not trigger anything)."""

_INTERNAL = frozenset({".gm", ".git"})
_GITIGNORE = ".gitignore"
_STEP_MS = 50
_WAKE_MS = (100, 300)


class ChangeFilter:
    """Which paths count: matches one of `patterns` (gitignore-style globs relative to the
    workspace, e.g. "docs/**/*.md", "*.py", "src/"), and is not under `.gm/` or `.git/`, and
    is not ignored by the workspace's `.gitignore` files (the root one and nested ones, git
    semantics).

    The ``.gitignore`` files are read once, here (a walk of the workspace that skips
    ignored directories, as git does); build a new filter to see edits to them.
    :func:`watch_changes` does so whenever a ``.gitignore`` changes.

    Args:
        workspace: the workspace root directory. A missing one has no ``.gitignore``.
        patterns: gitignore-style lines, each relative to the workspace: a pattern
            without a slash matches at any depth ("*.py" matches "src/b.py"), one with
            a slash is anchored ("docs/**/*.md"), a trailing slash matches everything
            under a directory ("src/"), and "!" re-excludes. No patterns match nothing.

    Raises:
        TypeError: `patterns` is a single string rather than a sequence of them.
    """

    def __init__(self, workspace: Path, patterns: Sequence[str]) -> None:
        if isinstance(patterns, str):
            raise TypeError("patterns must be a sequence of glob strings, not one string")
        self.workspace = workspace
        self.patterns = tuple(patterns)
        self._wanted = GitIgnoreSpec.from_lines(self.patterns)
        self._gitignores: dict[str, GitIgnoreSpec] = {}
        self._read_gitignores()

    def matches(self, relative: str) -> bool:
        """Whether a change to `relative` (a workspace-relative POSIX path, e.g.
        "docs/a.md", without a leading "./") counts. Pure: no file system access."""
        parts = relative.split("/")
        if _is_internal(parts) or not self._wanted.match_file(relative):
            return False
        return not self._ignored(parts, directory=False)

    def files_under(self, directory: str) -> list[str]:
        """The files under `directory` (workspace-relative POSIX, e.g. "docs/new") that
        count, sorted, found by walking it now. Empty when it is not a directory, or is
        internal or ignored; ignored directories below are not entered."""
        parts = directory.split("/")
        if _is_internal(parts) or self._ignored(parts, directory=True):
            return []
        found = ("/".join([*prefix, name]) for prefix, files in self._walk(parts) for name in files)
        return sorted(relative for relative in found if self.matches(relative))

    def _ignored(self, parts: list[str], *, directory: bool) -> bool:
        """Git's rule: a path is ignored when any directory above it is (nothing
        re-includes a file inside an excluded directory), or when it is itself."""
        parents = (parts[:depth] for depth in range(1, len(parts)))
        if any(self._excluded(parent, directory=True) for parent in parents):
            return True
        return self._excluded(parts, directory=directory)

    def _excluded(self, parts: list[str], *, directory: bool) -> bool:
        """The verdict of the `.gitignore` files from the root down to the path's own
        directory: the deepest one with a matching line decides."""
        verdict = False
        for depth in range(len(parts)):
            spec = self._gitignores.get("/".join(parts[:depth]))
            if spec is None:
                continue
            below = "/".join(parts[depth:]) + ("/" if directory else "")
            include = spec.check_file(below).include
            if include is not None:
                verdict = include
        return verdict

    def _walk(self, start: list[str]) -> Iterator[tuple[list[str], list[str]]]:
        """(a directory's path parts, its file names), top-down from `start` (parts of a
        workspace-relative directory), not entering internal or ignored directories. A
        directory's `.gitignore` may be read between its turn and its subdirectories'."""
        for directory, subdirectories, files in os.walk(self.workspace.joinpath(*start)):
            prefix = list(Path(directory).relative_to(self.workspace).parts)
            yield prefix, files
            subdirectories[:] = [
                name
                for name in subdirectories
                if name not in _INTERNAL and not self._excluded([*prefix, name], directory=True)
            ]

    def _read_gitignores(self) -> None:
        for prefix, files in self._walk([]):
            if _GITIGNORE in files:
                spec = _read_gitignore(self.workspace.joinpath(*prefix, _GITIGNORE))
                if spec is not None:
                    self._gitignores["/".join(prefix)] = spec


def _is_internal(parts: Collection[str]) -> bool:
    return not _INTERNAL.isdisjoint(parts)


def _read_gitignore(path: Path) -> GitIgnoreSpec | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return GitIgnoreSpec.from_lines(text.splitlines())


class _StopSignal:
    """What awatch polls (from its worker thread) to stop: the caller's event, or a flag
    of its own. awatch sets the event it was given when it is cancelled; this takes that
    `set()`, so cancelling one watch never sets an event the caller may share."""

    def __init__(self, stop: anyio.Event | None) -> None:
        self._stop = stop
        self._cancelled = False

    def is_set(self) -> bool:
        return self._cancelled or (self._stop is not None and self._stop.is_set())

    def set(self) -> None:
        self._cancelled = True


async def watch_changes(
    workspace: Path,
    patterns: Sequence[str],
    *,
    debounce_ms: int = 500,
    own_write: OwnWriteCheck | None = None,
    stop: anyio.Event | None = None,
) -> AsyncIterator[tuple[str, ...]]:
    """Yield one sorted tuple of changed workspace-relative paths per settled burst of
    changes (a burst is changes closer together than debounce_ms). Paths the filter rejects
    never appear; paths whose change is the agent's own (own_write returns True) are
    dropped; a burst left empty yields nothing. Ends when `stop` is set.

    Watching starts when iteration does (the first ``__anext__``); changes made before
    that are not seen. Paths are files only (added, modified or deleted: a deleted file is
    reported, with sha None passed to `own_write`), each once per batch, POSIX-style and
    relative to `workspace` (e.g. "docs/a.md"). A directory that appears (made, or moved
    in) brings the files in it that count. Which paths count is :class:`ChangeFilter`'s
    rule, rebuilt whenever a ``.gitignore`` changes. A batch is yielded once no change that
    counts has arrived for `debounce_ms` (plus up to about 100 ms for the operating
    system's events to be gathered); changes that the filter rejects neither join nor
    extend a burst. Changes made while the caller handles a batch are kept for the next.

    Args:
        workspace: the directory to watch, recursively.
        patterns: which paths count, as for :class:`ChangeFilter`.
        debounce_ms: the quiet period, in milliseconds, that ends a burst (at least 1).
        own_write: asked about each path of a settled burst, with the sha256 hex of its
            content now (None when deleted); the path is dropped when it says True. The
            content is hashed (in a worker thread) only when this is given.
        stop: set it to end the iteration (within about 50 ms); a burst still settling
            then is dropped. Without it, the iteration runs until cancelled; cancelling
            waits for watchfiles' worker thread, up to about 300 ms. Cancelling never
            sets `stop` (watchfiles would set the event it was given).

    Raises:
        ValueError: `debounce_ms` is below 1.
        TypeError: `patterns` is a single string.
        FileNotFoundError: `workspace` does not exist.
        watchfiles' WatchfilesRustInternalError: the operating system's watcher failed
            (e.g. out of inotify watches).

    All are raised on the first iteration, not at the call.
    """
    if debounce_ms < 1:
        raise ValueError(f"debounce_ms must be at least 1, got {debounce_ms}")
    root = await anyio.to_thread.run_sync(workspace.resolve)
    change_filter = await anyio.to_thread.run_sync(ChangeFilter, root, patterns)
    signal = _StopSignal(stop)
    if signal.is_set():
        return
    pending: set[str] = set()
    last_change = 0.0
    raw_batches = awatch(
        root,
        watch_filter=None,
        debounce=debounce_ms,
        step=min(_STEP_MS, debounce_ms),
        stop_event=cast("anyio.Event", signal),
        rust_timeout=min(max(debounce_ms, _WAKE_MS[0]), _WAKE_MS[1]),
        yield_on_timeout=True,
    )
    async with aclosing(raw_batches):
        async for raw in raw_batches:
            if signal.is_set():
                return
            changes = _relative_changes(root, raw)
            if any(_is_gitignore(path) for _, path in changes):
                change_filter = await anyio.to_thread.run_sync(ChangeFilter, root, patterns)
            counted = await _counted(changes, change_filter)
            now = anyio.current_time()
            if counted:
                pending |= counted
                last_change = now
            if pending and now - last_change >= debounce_ms / 1000:
                batch = await _not_own(root, pending, own_write)
                pending = set()
                if batch:
                    yield batch


def _relative_changes(root: Path, raw: Iterable[tuple[Change, str]]) -> list[tuple[Change, str]]:
    """The changes in `raw`, with paths made POSIX and relative to `root`; the root itself
    and anything outside it left out."""
    changes: list[tuple[Change, str]] = []
    for change, absolute in raw:
        try:
            relative = Path(absolute).relative_to(root)
        except ValueError:
            continue
        if relative.parts:
            changes.append((change, relative.as_posix()))
    return changes


async def _counted(
    changes: Collection[tuple[Change, str]], change_filter: ChangeFilter
) -> set[str]:
    """The changed paths that count, and the files that count in directories that appeared:
    the OS reports a directory moved in as one change, and files written into a new directory
    before its watch was set up not at all."""
    counted = {path for _, path in changes if change_filter.matches(path)}
    added = {
        path
        for change, path in changes
        if change == Change.added and not _is_internal(path.split("/"))
    }
    if added:
        counted |= await anyio.to_thread.run_sync(_files_within, added, change_filter)
    return counted


def _files_within(paths: Iterable[str], change_filter: ChangeFilter) -> set[str]:
    return {file for path in paths for file in change_filter.files_under(path)}


def _is_gitignore(relative: str) -> bool:
    parts = relative.split("/")
    return parts[-1] == _GITIGNORE and not _is_internal(parts)


async def _not_own(
    root: Path, paths: Collection[str], own_write: OwnWriteCheck | None
) -> tuple[str, ...]:
    """The changed files among `paths`, sorted, without those `own_write` claims. A file
    that cannot be read is kept without asking: its content cannot be the agent's."""
    files = await anyio.to_thread.run_sync(_changed_files, root, paths)
    if own_write is None:
        return tuple(files)
    digests = await anyio.to_thread.run_sync(_digests, root, files)
    kept: list[str] = []
    for relative in files:
        if relative not in digests or not await own_write(relative, digests[relative]):
            kept.append(relative)
    return tuple(kept)


def _changed_files(root: Path, paths: Collection[str]) -> list[str]:
    """`paths`, sorted, without directories: those that exist now, and deleted ones,
    recognised by a changed path beneath them."""
    parents = {
        "/".join(p.split("/")[:depth]) for p in paths for depth in range(1, p.count("/") + 1)
    }
    return [p for p in sorted(paths) if p not in parents and not (root / p).is_dir()]


def _digests(root: Path, files: Sequence[str]) -> dict[str, str | None]:
    """Each file's sha256 hex, or None when it is gone; files that cannot be read are left out."""
    digests: dict[str, str | None] = {}
    for relative in files:
        try:
            digests[relative] = _sha256(root / relative)
        except OSError:
            continue
    return digests


def _sha256(path: Path) -> str | None:
    """The sha256 hex of the file's bytes; None when it is gone (or no longer a file).

    Raises:
        OSError: it exists but cannot be read (e.g. permission denied).
    """
    try:
        with path.open("rb") as stream:
            return hashlib.file_digest(stream, "sha256").hexdigest()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
