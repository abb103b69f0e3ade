"""Restoring a fork's workspace: the file changes from a run's result back to an earlier seq."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gm_agent.journal import Journal
from gm_agent.kernel._checkpoint import load_state
from gm_agent.kernel.state import PatchView
from gm_agent.patches import PlannedChange

__all__ = ["net_changes", "plan_restore"]


async def plan_restore(journal: Journal, parent_id: str, fork_seq: int) -> list[PlannedChange]:
    """The changes that take the workspace from the parent's current result back to
    its state at ``fork_seq``: one change per file, from what is there now (as far
    as the parent's journal knows) to what was there at the fork point."""
    parent, _ = await load_state(journal, parent_id)
    revert = [p for p in parent.patches if p.status == "applied" and p.applied_seq > fork_seq]
    reapply = [p for p in parent.patches if p.status == "reverted" and p.applied_seq <= fork_seq]
    shas = {
        s
        for p in (*revert, *reapply)
        for f in p.files
        for s in (f.before_sha256, f.after_sha256)
        if s is not None
    }
    blobs = await journal.get_blobs(shas)
    steps: list[PlannedChange] = []
    for patch in reversed(revert):
        steps += [c.invert() for c in reversed(_changes(patch, blobs))]
    for patch in reapply:
        steps += _changes(patch, blobs)
    return net_changes(steps)


def _changes(patch: PatchView, blobs: Mapping[str, bytes]) -> list[PlannedChange]:
    return [PlannedChange.from_record(f, blobs) for f in patch.files]


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
    net: list[PlannedChange] = []
    for path, (before, before_mode) in start.items():
        after, after_mode = end[path]
        if (before, before_mode) == (after, after_mode):
            continue
        op = (
            "create"
            if before is None
            else "delete"
            if after is None
            else "chmod"
            if before == after
            else "modify"
        )
        net.append(PlannedChange(path, op, before, after, before_mode, after_mode))
    return net
