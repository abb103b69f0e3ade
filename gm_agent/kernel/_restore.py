"""Restoring a fork's workspace: each file the parent changed, back to the fork point.

For every path the parent run's patches touched, the journal says what the
file held at the fork point (``target``) and what the parent left there as of
now (``expected``). The plan goes from what is on disk to ``target``; a file
whose disk content is neither ``expected`` nor already ``target`` was changed
by someone else since (the user, or another run such as an earlier fork) and is
reported as edited.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread

from gm_agent.events import FileChange
from gm_agent.journal import Journal
from gm_agent.kernel._checkpoint import load_state
from gm_agent.kernel.state import PatchView, RunState
from gm_agent.patches import PlannedChange, read_state, sha256_hex

__all__ = ["RestorePlan", "net_changes", "plan_restore"]

FileState = tuple[str | None, int | None]
"""(sha256 of the content, or ``None`` when absent; permission bits)."""

_ABSENT: FileState = (None, None)


@dataclass(frozen=True)
class RestorePlan:
    """``changes`` take the workspace to the fork point; ``edited`` names the files
    that hold neither the parent's result nor the fork point's content."""

    changes: tuple[PlannedChange, ...]
    edited: tuple[str, ...]


def _walk(patches: Iterable[PatchView]) -> tuple[dict[str, FileState], dict[str, FileState]]:
    """Each path's state before the first of ``patches`` touching it, and after the last."""
    start: dict[str, FileState] = {}
    end: dict[str, FileState] = {}
    for patch in patches:
        for change in patch.files:
            _touch(start, end, change)
    return start, end


def _touch(start: dict[str, FileState], end: dict[str, FileState], change: FileChange) -> None:
    if change.op == "rename" and change.old_path:
        start.setdefault(change.old_path, (change.before_sha256, change.before_mode))
        end[change.old_path] = _ABSENT
        start.setdefault(change.path, _ABSENT)
    else:
        start.setdefault(change.path, (change.before_sha256, change.before_mode))
    end[change.path] = (change.after_sha256, change.mode)


def _applied_at_fork_point(then: RunState, now: RunState) -> list[PatchView]:
    """The parent's patches in effect at the fork point. A parent that is itself a
    fork counts its restore patch as part of every fork point of its own."""
    applied = [p for p in then.patches if p.status == "applied"]
    if now.parent_id is not None and now.patches and now.patches[0].call_id is None:
        restore = now.patches[0]
        if all(p.patch_id != restore.patch_id for p in then.patches):
            applied.insert(0, restore.model_copy(update={"status": "applied"}))
    return applied


async def plan_restore(
    journal: Journal, workspace: Path, parent_id: str, fork_seq: int
) -> RestorePlan:
    """Plan taking ``workspace`` to run ``parent_id``'s files at ``fork_seq``.

    Raises:
        PatchError: a path to restore is not a regular file, or cannot be read.
    """
    then, _ = await load_state(journal, parent_id, fork_seq)
    now, _ = await load_state(journal, parent_id)
    origin, _ = _walk(p for p in now.patches if p.status in ("applied", "reverted"))
    _, at_fork = _walk(_applied_at_fork_point(then, now))
    _, left = _walk(p for p in now.patches if p.status == "applied")
    target = {path: at_fork.get(path, origin[path]) for path in origin}
    expected = {path: left.get(path, origin[path]) for path in origin}
    blobs = await journal.get_blobs(sha for sha, _ in target.values() if sha is not None)
    on_disk = await anyio.to_thread.run_sync(_read_all, workspace, sorted(origin))
    changes: list[PlannedChange] = []
    edited: list[str] = []
    for path, (content, mode) in on_disk.items():
        disk: FileState = (None if content is None else sha256_hex(content), mode)
        if disk == target[path]:
            continue
        if disk != expected[path]:
            edited.append(path)
        sha, target_mode = target[path]
        after = None if sha is None else blobs[sha]
        changes.append(_change(path, content, mode, after, target_mode))
    return RestorePlan(tuple(changes), tuple(edited))


def _read_all(workspace: Path, paths: Sequence[str]) -> dict[str, tuple[bytes | None, int | None]]:
    return {path: read_state(workspace / path) for path in paths}


def _change(
    path: str,
    before: bytes | None,
    before_mode: int | None,
    after: bytes | None,
    after_mode: int | None,
) -> PlannedChange:
    op = (
        "create"
        if before is None
        else "delete"
        if after is None
        else "chmod"
        if before == after
        else "modify"
    )
    return PlannedChange(path, op, before, after, before_mode, after_mode)


def net_changes(steps: Sequence[PlannedChange]) -> list[PlannedChange]:
    """Collapse a sequence of changes into one per path, from its first ``before`` to its
    last ``after`` (a rename becomes a delete here and a create there); paths that end
    as they started are left out."""
    start: dict[str, tuple[bytes | None, int | None]] = {}
    end: dict[str, tuple[bytes | None, int | None]] = {}
    for change in steps:
        if change.op == "rename":
            start.setdefault(change.source_path, (change.before, change.before_mode))
            end[change.source_path] = (None, None)
            start.setdefault(change.path, (None, None))
        else:
            start.setdefault(change.path, (change.before, change.before_mode))
        end[change.path] = (change.after, change.after_mode)
    return [
        _change(path, before, before_mode, *end[path])
        for path, (before, before_mode) in start.items()
        if (before, before_mode) != end[path]
    ]
