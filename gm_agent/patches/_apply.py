"""Checking and applying file changes on disk, each atomically.

Content is written through a temporary file in the same directory: write,
fsync, ``os.replace``, fsync the directory (so the rename itself survives a
power loss; see rename(2) and fsync(2)). Deletes and renames fsync their
directories too.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

from gm_agent.errors import PatchError
from gm_agent.events import FileChange, FileMismatch
from gm_agent.patches._change import DEFAULT_FILE_MODE, PlannedChange, sha256_hex

__all__ = ["apply_changes", "check_changes", "complete_patch", "plan_write", "read_state"]

_TEMP_SUFFIX = ".gm-tmp"


def read_state(path: Path) -> tuple[bytes | None, int | None]:
    """A file's content and permission bits, or ``(None, None)`` when it does not exist.

    Raises:
        PatchError: it exists but is not a regular file, or cannot be read.
    """
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        raise PatchError(f"cannot look at {str(path)!r}: {exc.strerror}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise PatchError(f"{str(path)!r} is not a regular file")
    try:
        return path.read_bytes(), stat.S_IMODE(info.st_mode)
    except OSError as exc:
        raise PatchError(f"cannot read {str(path)!r}: {exc.strerror}") from exc


def plan_write(workspace: Path, target: Path, content: bytes) -> PlannedChange:
    """Plan replacing ``target`` (absolute, inside ``workspace``) with ``content``.

    A new file gets :data:`DEFAULT_FILE_MODE`; an existing one keeps its mode.

    Raises:
        PatchError: ``target`` is not a regular file or cannot be read.
    """
    shown = target.relative_to(workspace).as_posix()
    before, mode = read_state(target)
    return PlannedChange(
        path=shown,
        op="create" if before is None else "modify",
        before=before,
        after=content,
        before_mode=mode,
        after_mode=DEFAULT_FILE_MODE if mode is None else mode,
    )


def _mismatch(
    path: str, expected: bytes | None, mode: int | None, workspace: Path
) -> FileMismatch | None:
    try:
        actual, actual_mode = read_state(workspace / path)
    except PatchError:
        actual, actual_mode = b"\0<not a regular file>", None
    same_content = actual == expected
    same_mode = expected is None or mode is None or actual_mode == mode
    if same_content and same_mode:
        return None
    return FileMismatch(
        path=path,
        expected_sha256=None if expected is None else sha256_hex(expected),
        actual_sha256=None if actual is None else sha256_hex(actual),
        expected_mode=mode,
        actual_mode=actual_mode,
    )


def check_changes(workspace: Path, changes: Sequence[PlannedChange]) -> list[FileMismatch]:
    """Files not in the state ``changes`` start from (content and mode); empty when all are."""
    found: list[FileMismatch] = []
    for change in changes:
        mismatch = _mismatch(change.source_path, change.before, change.before_mode, workspace)
        if mismatch is None and change.op == "rename":
            mismatch = _mismatch(change.path, None, None, workspace)  # the target must be free
        if mismatch is not None:
            found.append(mismatch)
    return found


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temporaries(path: Path) -> None:
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
    _fsync_dir(path.parent)


def _apply_one(workspace: Path, change: PlannedChange) -> None:
    target = workspace / change.path
    match change.op:
        case "create" | "modify":
            assert change.after is not None
            _write_atomically(target, change.after, change.after_mode or DEFAULT_FILE_MODE)
        case "delete":
            target.unlink(missing_ok=True)
            _fsync_dir(target.parent)
        case "chmod":
            os.chmod(target, change.after_mode or DEFAULT_FILE_MODE)
        case "rename":
            source = workspace / change.source_path
            if not source.exists() and change.after is not None:  # forced over a missing source
                _write_atomically(target, change.after, change.after_mode or DEFAULT_FILE_MODE)
                return
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
            if change.after_mode is not None:
                os.chmod(target, change.after_mode)
            _fsync_dir(target.parent)
            _fsync_dir(source.parent)


def apply_changes(
    workspace: Path,
    changes: Sequence[PlannedChange],
    *,
    force: bool = False,
    skip_done: bool = False,
) -> tuple[FileChange, ...]:
    """Apply ``changes`` in order, after checking every file is in its ``before`` state.

    Args:
        workspace: the (resolved) workspace root.
        changes: what to do.
        force: skip the check (``gm undo --force``): overwrite whatever is there.
        skip_done: leave out changes whose ``after`` state already holds (an undo
            a crash interrupted is finished by running it again).

    Returns:
        The journal records of the changes, in order (skipped ones included).

    Raises:
        PatchError: a file is not in its ``before`` state (nothing is written then;
            the message names the files), or the disk refused a write.
    """
    records = tuple(change.describe() for change in changes)
    if skip_done:
        changes = [c for c in changes if check_changes(workspace, [c.invert()])]
    if not force:
        mismatches = check_changes(workspace, changes)
        if mismatches:
            names = ", ".join(repr(m.path) for m in mismatches)
            raise PatchError(f"{names} changed on disk since it was read; read it again")
    try:
        for change in changes:
            _apply_one(workspace, change)
    except OSError as exc:
        raise PatchError(f"cannot change {exc.filename!r}: {exc.strerror}") from exc
    return records


def complete_patch(workspace: Path, changes: Sequence[PlannedChange]) -> bool:
    """Finish a patch a crash interrupted between its intent and ``patch.applied``.

    Each file is compared with the patch: already in its ``after`` state (done),
    still in its ``before`` state (applied now), or anything else (a conflict:
    someone changed it since; nothing is written).

    Returns:
        True when every file is now in its ``after`` state; False on a conflict.
    """
    remaining: list[PlannedChange] = []
    for change in changes:
        remove_stale_temporaries(workspace / change.path)
        if not check_changes(workspace, [change.invert()]):  # already done
            continue
        if check_changes(workspace, [change]):
            return False
        remaining.append(change)
    apply_changes(workspace, remaining)
    return True
