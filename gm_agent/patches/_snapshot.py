"""Workspace snapshots: what a shell command changed, found cheaply.

A snapshot maps each file (as :func:`walk_files` sees the workspace) to its
size, mtime, inode, mode and content hash. Taking one after another rehashes
only files whose size, mtime, inode or mode moved (git's index uses the same
trick), and returns the contents it read so they can be stored as blobs before
anything can change them. Two snapshots compare into the file changes between
them, renames included.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gm_agent.events import FileChange
from gm_agent.patches._change import sha256_hex
from gm_agent.patches._walk import walk_entries

__all__ = [
    "Snapshot",
    "SnapshotEntry",
    "SnapshotLimits",
    "diff_snapshots",
    "drop_visibility_changes",
    "manifest_of",
    "snapshot_from_manifest",
    "take_snapshot",
]


@dataclass(frozen=True)
class SnapshotLimits:
    """Caps on what a snapshot reads, in bytes; files beyond them are listed, not covered."""

    max_file_bytes: int = 16 * 1024 * 1024
    max_total_bytes: int = 512 * 1024 * 1024


@dataclass(frozen=True)
class SnapshotEntry:
    """One file's stat fingerprint and content hash (``None``: over a cap, not hashed)."""

    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    mode: int
    sha256: str | None


@dataclass(frozen=True)
class Snapshot:
    """The workspace at one moment. ``uncovered`` lists files over the caps."""

    entries: Mapping[str, SnapshotEntry] = field(default_factory=dict[str, SnapshotEntry])

    @property
    def uncovered(self) -> list[str]:
        """Files not hashed because of a cap: changes to them cannot be undone."""
        return sorted(path for path, entry in self.entries.items() if entry.sha256 is None)


def manifest_of(snapshot: Snapshot) -> bytes:
    """The snapshot's hashes and modes as canonical JSON, to store as a blob."""
    # Files over the caps are listed too (hash null), so a later diff calls them
    # uncovered instead of created.
    listing = {path: [entry.sha256, entry.mode] for path, entry in sorted(snapshot.entries.items())}
    return json.dumps(listing, separators=(",", ":"), sort_keys=True).encode()


def snapshot_from_manifest(manifest: bytes) -> Snapshot:
    """A snapshot rebuilt from :func:`manifest_of` (hashes and modes; no stat fingerprints)."""
    listing: dict[str, list[Any]] = json.loads(manifest)
    return Snapshot(
        {
            path: SnapshotEntry(-1, -1, -1, -1, int(mode), None if sha is None else str(sha))
            for path, (sha, mode) in listing.items()
        }
    )


def take_snapshot(
    workspace: Path, previous: Snapshot | None = None, limits: SnapshotLimits | None = None
) -> tuple[Snapshot, dict[str, bytes]]:
    """Scan ``workspace`` (blocking I/O), reusing ``previous`` hashes for unchanged files.

    Returns:
        The snapshot, and the contents read now by sha256 (store them as blobs).
    """
    limits = limits or SnapshotLimits()
    known: Mapping[str, SnapshotEntry] = previous.entries if previous else {}
    entries: dict[str, SnapshotEntry] = {}
    contents: dict[str, bytes] = {}
    budget = limits.max_total_bytes
    for path, info in walk_entries(workspace, follow_links=False):
        relative = path.relative_to(workspace).as_posix()
        fingerprint = (
            info.st_size,
            info.st_mtime_ns,
            info.st_ctime_ns,  # a changed ctime catches `touch -d`, `cp -p`, `tar x`
            info.st_ino,
            stat.S_IMODE(info.st_mode),
        )
        old = known.get(relative)
        if (
            old is not None
            and (old.size, old.mtime_ns, old.ctime_ns, old.ino, old.mode) == fingerprint
        ):
            entries[relative] = old
            continue
        sha = None
        if info.st_size <= min(limits.max_file_bytes, budget):
            try:
                data = path.read_bytes()
            except OSError:  # unreadable now (a chmod 000?): keep what we knew, never "deleted"
                sha = old.sha256 if old is not None else None
            else:
                sha = sha256_hex(data)
                contents[sha] = data
                budget -= len(data)
        entries[relative] = SnapshotEntry(*fingerprint, sha256=sha)
    return Snapshot(entries), contents


def diff_snapshots(before: Snapshot, after: Snapshot) -> tuple[list[FileChange], list[str]]:
    """The file changes from ``before`` to ``after``, and changed files no snapshot covers.

    A file deleted and another created with the same content (and nothing else
    with that content created) is reported as one ``rename``.
    """
    changes: list[FileChange] = []
    uncovered: list[str] = []
    gone = {p: e for p, e in before.entries.items() if p not in after.entries}
    new = {p: e for p, e in after.entries.items() if p not in before.entries}
    for path, entry in {**gone, **new}.items():
        if entry.sha256 is None:
            uncovered.append(path)
    renamed_from: dict[str, str] = {}
    by_hash: dict[str, list[str]] = {}
    for path, entry in gone.items():
        if entry.sha256 is not None:
            by_hash.setdefault(entry.sha256, []).append(path)
    for path, entry in sorted(new.items()):
        candidates = by_hash.get(entry.sha256 or "", [])
        if entry.sha256 is not None and len(candidates) == 1:
            renamed_from[path] = candidates.pop()
    for path in sorted(set(before.entries) | set(after.entries)):
        old, cur = before.entries.get(path), after.entries.get(path)
        if old is not None and cur is not None:
            if old.sha256 is None or cur.sha256 is None:
                if (old.size, old.mtime_ns, old.mode) != (cur.size, cur.mtime_ns, cur.mode):
                    uncovered.append(path)
                continue
            if old.sha256 != cur.sha256:
                changes.append(_change(path, "modify", old, cur))
            elif old.mode != cur.mode:
                changes.append(_change(path, "chmod", old, cur))
        elif cur is not None and cur.sha256 is not None:
            source = renamed_from.get(path)
            if source is not None:
                changes.append(_change(path, "rename", before.entries[source], cur, source))
            else:
                changes.append(_change(path, "create", None, cur))
        elif old is not None and old.sha256 is not None and path not in renamed_from.values():
            changes.append(_change(path, "delete", old, None))
    return changes, sorted(set(uncovered))


def drop_visibility_changes(
    workspace: Path, changes: list[FileChange], since_ns: int
) -> list[FileChange]:
    """Leave out "changes" that are only files coming into or out of view.

    When a command edits a ``.gitignore``, a file it never touched can appear in
    the after-snapshot (created?) or vanish from it (deleted?). A "deleted" file
    that is still on disk, and a "created" one whose ctime is older than
    ``since_ns`` (the file system's clock when the command started), are such
    files; recording them would make ``gm undo`` delete or re-create user files.
    """
    kept: list[FileChange] = []
    for change in changes:
        path = workspace / change.path
        if change.op == "delete" and path.exists():
            continue
        if change.op == "create":
            try:
                if path.lstat().st_ctime_ns < since_ns:
                    continue
            except OSError:
                pass
        kept.append(change)
    return kept


def _change(
    path: str,
    op: str,
    old: SnapshotEntry | None,
    cur: SnapshotEntry | None,
    old_path: str | None = None,
) -> FileChange:
    return FileChange.model_validate(
        {
            "path": path,
            "op": op,
            "before_sha256": old.sha256 if old else None,
            "after_sha256": cur.sha256 if cur else None,
            "mode": cur.mode if cur else None,
            "size": cur.size if cur else None,
            "before_mode": old.mode if old else None,
            "old_path": old_path,
        }
    )
