"""Planning and applying file changes atomically.

A write is planned against what is on disk (:func:`plan_write`), checked again
just before it lands, and written through a temporary file in the same
directory: write, fsync, ``os.replace``, fsync the directory (so the rename
itself survives a power loss; see rename(2) and fsync(2)).
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gm_agent.errors import PatchError
from gm_agent.events import FileChange

__all__ = [
    "DEFAULT_FILE_MODE",
    "PlannedChange",
    "apply_changes",
    "complete_patch",
    "plan_write",
    "sha256_hex",
]

DEFAULT_FILE_MODE = 0o644
"""Permission bits of a file a tool creates."""


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class PlannedChange:
    """One file's full before and after content.

    Attributes:
        path: POSIX path relative to the workspace.
        before: content before, or ``None`` if the file does not exist.
        after: content after (deletes arrive with the Patches issue).
        mode: permission bits after the change.
    """

    path: str
    before: bytes | None
    after: bytes
    mode: int

    def describe(self) -> FileChange:
        """The journal's record of this change (hashes, not contents)."""
        return FileChange(
            path=self.path,
            op="create" if self.before is None else "modify",
            before_sha256=None if self.before is None else sha256_hex(self.before),
            after_sha256=sha256_hex(self.after),
            mode=self.mode,
            size=len(self.after),
        )


def plan_write(workspace: Path, target: Path, content: bytes) -> PlannedChange:
    """Plan replacing ``target`` (an absolute path inside ``workspace``) with ``content``.

    Raises:
        PatchError: ``target`` is a directory or cannot be read.
    """
    shown = target.relative_to(workspace).as_posix()
    try:
        info = target.stat()
    except FileNotFoundError:
        before, mode = None, DEFAULT_FILE_MODE
    except OSError as exc:
        raise PatchError(f"cannot write {shown!r}: {exc.strerror}") from exc
    else:
        if not stat.S_ISREG(info.st_mode):
            raise PatchError(f"{shown!r} is not a regular file")
        try:
            before = target.read_bytes()
        except OSError as exc:
            raise PatchError(f"cannot read {shown!r}: {exc.strerror}") from exc
        mode = stat.S_IMODE(info.st_mode)
    return PlannedChange(shown, before, content, mode)


def _current(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


_TEMP_SUFFIX = ".gm-tmp"


def _remove_stale_temporaries(path: Path) -> None:
    """Delete temporary files a crash left beside ``path`` (``.NAME.*.gm-tmp``)."""
    if path.parent.is_dir():
        for stale in path.parent.glob(f".{path.name}.*{_TEMP_SUFFIX}"):
            stale.unlink(missing_ok=True)


def _write_atomically(path: Path, content: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def apply_changes(workspace: Path, changes: list[PlannedChange]) -> tuple[FileChange, ...]:
    """Write ``changes`` to disk, each atomically, after checking none moved since planning.

    Returns:
        The journal records of the changes, in order.

    Raises:
        PatchError: a file no longer has its planned ``before`` content (nothing
            is written then), or the disk refused a write.
    """
    for change in changes:
        if _current(workspace / change.path) != change.before:
            raise PatchError(f"{change.path!r} changed on disk since it was read; read it again")
    try:
        for change in changes:
            _write_atomically(workspace / change.path, change.after, change.mode)
    except OSError as exc:
        raise PatchError(f"cannot write {exc.filename!r}: {exc.strerror}") from exc
    return tuple(change.describe() for change in changes)


def complete_patch(
    workspace: Path, files: tuple[FileChange, ...], contents: dict[str, bytes]
) -> bool:
    """Finish a patch a crash interrupted between its intent and ``patch.applied``.

    Each file is compared with its recorded hashes: already at ``after`` (done),
    still at ``before`` (written now from ``contents``, keyed by sha256), or
    anything else (a conflict: someone changed it since).

    Returns:
        True when every file now has its ``after`` content; False on a conflict
        (then nothing is written).
    """
    to_write: list[PlannedChange] = []
    for change in files:
        target = workspace / change.path
        _remove_stale_temporaries(target)
        current = _current(target)
        current_sha = None if current is None else sha256_hex(current)
        if current_sha == change.after_sha256:
            continue
        if current_sha != change.before_sha256 or change.after_sha256 is None:
            return False
        to_write.append(
            PlannedChange(
                change.path,
                current,
                contents[change.after_sha256],
                change.mode or DEFAULT_FILE_MODE,
            )
        )
    apply_changes(workspace, to_write)
    return True
