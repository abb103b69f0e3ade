"""Patches: every file change the agent makes, recorded with hashes and content blobs,
appliable, invertible, and rendered as diffs. See ``docs/patches.md``."""

from __future__ import annotations

from gm_agent.patches._apply import (
    apply_changes,
    check_changes,
    complete_patch,
    plan_write,
    read_state,
)
from gm_agent.patches._change import DEFAULT_FILE_MODE, PlannedChange, sha256_hex
from gm_agent.patches._diff import count_lines, is_binary, render_diff
from gm_agent.patches._lock import WriterLock
from gm_agent.patches._snapshot import (
    Snapshot,
    SnapshotEntry,
    SnapshotLimits,
    diff_snapshots,
    drop_visibility_changes,
    manifest_of,
    snapshot_from_manifest,
    take_snapshot,
)
from gm_agent.patches._walk import SKIPPED_DIRS, walk_files

__all__ = [
    "DEFAULT_FILE_MODE",
    "SKIPPED_DIRS",
    "PlannedChange",
    "Snapshot",
    "SnapshotEntry",
    "SnapshotLimits",
    "WriterLock",
    "apply_changes",
    "check_changes",
    "complete_patch",
    "count_lines",
    "diff_snapshots",
    "drop_visibility_changes",
    "is_binary",
    "manifest_of",
    "plan_write",
    "read_state",
    "render_diff",
    "sha256_hex",
    "snapshot_from_manifest",
    "take_snapshot",
    "walk_files",
]
