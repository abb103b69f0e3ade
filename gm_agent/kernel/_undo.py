"""``gm diff``, ``gm undo`` and ``gm redo``: a run's net change, reverted and re-applied.

A scheme run's change includes what its agent steps' runs (and its fallback's)
changed: they are part of what the scheme did, so all three take them in, in the
order the patches were applied.

Undo reverts the run's applied patches newest first, each as a journaled
``patch.reverted`` carrying the inverse patch, after checking that every file is
still as the run left it: a file the user edited since is named and nothing is
touched, unless forced. Redo re-applies what the latest undo reverted, oldest
first, with the same check the other way round. Both hold the run's lease (so a
live run is never changed under its kernel) and the workspace writer lock.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.to_thread

from gm_agent.clock import Clock, SystemClock
from gm_agent.errors import PatchError, UserError
from gm_agent.events import FileChange, PatchReapplied, PatchReverted, new_event
from gm_agent.journal import DEFAULT_LEASE_S, Journal, new_owner
from gm_agent.kernel._checkpoint import load_state
from gm_agent.kernel._restore import net_changes
from gm_agent.kernel._scheme_record import descendants_of
from gm_agent.kernel.state import PatchView, RunState
from gm_agent.patches import (
    PlannedChange,
    WriterLock,
    apply_changes,
    check_changes,
    count_lines,
    render_diff,
)
from gm_agent.settings import GM_DIR, load_settings

__all__ = ["FileDiff", "UndoReport", "redo_run", "run_diff", "undo_run"]


@dataclass(frozen=True)
class FileDiff:
    """One file's net change over a run: its unified diff and line counts."""

    path: str
    diff: str
    added: int
    removed: int


@dataclass(frozen=True)
class UndoReport:
    """What an undo or redo did: the patches it touched, in order, and the files."""

    run_id: str
    undo_id: str
    patches: tuple[str, ...]
    files: tuple[str, ...]


async def _blobs(journal: Journal, patches: Sequence[PatchView]) -> dict[str, bytes]:
    shas = {s for p in patches for f in p.files for s in (f.before_sha256, f.after_sha256) if s}
    return {sha: await journal.get_blob(sha) for sha in sorted(shas)}


def _changes(patch: PatchView, blobs: Mapping[str, bytes]) -> list[PlannedChange]:
    return [PlannedChange.from_record(f, blobs) for f in patch.files]


async def _open(workspace: Path, environ: Mapping[str, str], read_only: bool = False) -> Journal:
    settings = load_settings(workspace, environ)
    return await Journal.open(settings.journal_path, create=False, read_only=read_only)


async def run_diff(workspace: Path, run_ref: str, environ: Mapping[str, str]) -> list[FileDiff]:
    """The net change run ``run_ref`` made to the workspace, file by file (reverted patches excluded)."""
    async with await _open(workspace, environ, read_only=True) as journal:
        state, _ = await load_state(journal, await journal.resolve_run(run_ref))
        states = [state, *await descendants_of(journal, state)]
        applied = [p for p in _in_applied_order(states) if p.status == "applied"]
        blobs = await _blobs(journal, applied)
    changes = [change for patch in applied for change in _changes(patch, blobs)]
    diffs: list[FileDiff] = []
    for net in sorted(net_changes(changes), key=lambda c: c.path):
        text = render_diff(
            net.path if net.before is not None else None,
            net.path if net.after is not None else None,
            net.before,
            net.after,
            net.before_mode,
            net.after_mode,
        )
        added, removed = count_lines(text)
        diffs.append(FileDiff(net.path, text, added, removed))
    return diffs


@dataclass(frozen=True)
class _HeldRun:
    """A run taken for an undo or redo: its journal, id, folded state, our owner id,
    and its patches and its agent runs' (see the module docstring) in applied order,
    with the run each belongs to (``run_of``, by patch id)."""

    journal: Journal
    run_id: str
    state: RunState
    owner: str
    patches: tuple[PatchView, ...] = ()
    run_of: Mapping[str, str] = field(default_factory=dict[str, str])


@asynccontextmanager
async def _held_run(
    workspace: Path, run_ref: str, environ: Mapping[str, str], clock: Clock
) -> AsyncGenerator[_HeldRun, None]:
    """Hold run ``run_ref``'s lease (and its agent runs') and the workspace writer
    lock, for a settled run.

    Raises:
        RunLeased: the run (or one of its agent runs) is being executed right now.
        UserError: a crash stopped it mid-change (resume it first).
    """
    async with await _open(workspace, environ) as journal:
        run_id = await journal.resolve_run(run_ref)
        owner = new_owner(clock.new_id())
        held: list[str] = []

        async def take(member: str) -> RunState:
            await journal.acquire_lease(member, owner, DEFAULT_LEASE_S * 6)
            held.append(member)
            state, _ = await load_state(journal, member)
            _require_settled(state)
            return state

        try:
            state = await take(run_id)
            below = [d.run_id for d in await descendants_of(journal, state)]
            states = [state, *[await take(c) for c in below]]
            patches = tuple(_in_applied_order(states))
            run_of = {p.patch_id: s.run_id for s in states for p in s.patches}
            async with WriterLock(workspace / GM_DIR / "writer.lock", owner, clock):
                yield _HeldRun(journal, run_id, states[0], owner, patches, run_of)
        finally:
            for member in held:
                await journal.release_lease(member, owner)


def _in_applied_order(states: Sequence[RunState]) -> list[PatchView]:
    """The patches of ``states`` in the order they were first applied (journal seq)."""
    return sorted((p for s in states for p in s.patches), key=lambda p: p.applied_seq)


def _require_settled(state: RunState) -> None:
    """Refuse a run a crash cut off mid-change: its journal does not yet say what changed."""
    unsettled = state.open_jobs() or any(p.status == "intent" for p in state.patches)
    if unsettled:
        raise UserError(
            f"run {state.run_id} stopped in the middle of a change; run `gm resume {state.run_id}` "
            "first (it records what the interrupted step changed), then undo"
        )


def _refusal(mismatched: list[str], verb: str) -> UserError:
    names = ", ".join(repr(p) for p in mismatched)
    return UserError(
        f"cannot {verb}: {names} changed since the run changed it (your edits?); "
        f"nothing was touched. Use --force to overwrite them"
    )


async def undo_run(
    workspace: Path,
    run_ref: str,
    environ: Mapping[str, str],
    *,
    to_seq: int | None = None,
    patch: str | None = None,
    force: bool = False,
    clock: Clock | None = None,
) -> UndoReport:
    """Revert run ``run_ref``'s applied patches, newest first: those after ``to_seq``
    only, or only the one whose id is (or starts with) ``patch``.

    One patch is reverted only while its files are as it left them: a later patch
    of the same file makes it a conflict (named), unless forced.

    Raises:
        UserError: a file changed since the run changed it (without ``force``),
            there is nothing to undo, or ``patch`` names no applied patch.
        RunLeased: the run is being executed right now.
    """
    clock = clock or SystemClock()
    workspace = Path(await anyio.Path(workspace).resolve())
    async with _held_run(workspace, run_ref, environ, clock) as held:
        targets = [
            p for p in held.patches if p.status == "applied" and p.applied_seq > (to_seq or 0)
        ]
        if patch is not None:
            applied = targets
            targets = _one_patch(held.run_id, targets, patch)
            _refuse_built_on(targets[0], applied)
        if not targets:
            raise UserError(f"run {held.run_id} has no applied changes to undo")
        undo_id = clock.new_id()
        blobs = await _blobs(held.journal, targets)
        if not force:
            await _check_final_state(workspace, targets, blobs, "undo")
        files: list[str] = []
        for target in reversed(targets):
            inverse = [c.invert() for c in reversed(_changes(target, blobs))]
            records = await _apply(workspace, inverse, force)
            files += [r.path for r in records]
            event = PatchReverted(
                patch_id=target.patch_id, undo_id=undo_id, files=records, forced=force
            )
            owner = held.run_of[target.patch_id]
            await held.journal.append([new_event(clock, owner, "user", event)])
        patches = tuple(p.patch_id for p in reversed(targets))
        return UndoReport(held.run_id, undo_id, patches, tuple(dict.fromkeys(files)))


def _refuse_built_on(target: PatchView, applied: Sequence[PatchView]) -> None:
    """Refuse to revert ``target`` alone when a later applied patch changed one of
    its files: even forced, that later patch would stay recorded as applied with
    its bytes gone, and every later undo of the run would conflict.

    Raises:
        UserError: naming the later patch and the file.
    """
    mine = {f.path for f in target.files}
    for later in applied:
        if later.applied_seq > target.applied_seq:
            shared = sorted(mine & {f.path for f in later.files})
            if shared:
                raise UserError(
                    f"patch {later.patch_id} changed {shared[0]!r} after patch "
                    f"{target.patch_id}; undo it first (`gm undo --patch {later.patch_id[:10]}`), "
                    f"or undo the run back to before it with --to"
                )


def _one_patch(run_id: str, applied: Sequence[PatchView], ref: str) -> list[PatchView]:
    """The applied patch whose id is or starts with ``ref``.

    Raises:
        UserError: none is, or several are.
    """
    found = [p for p in applied if p.patch_id.startswith(ref)] if ref else []
    if len(found) != 1:
        known = ", ".join(p.patch_id for p in applied) or "none"
        what = "no" if not found else "more than one"
        raise UserError(f"{what} applied patch of run {run_id} matches {ref!r}; applied: {known}")
    return found


async def redo_run(
    workspace: Path,
    run_ref: str,
    environ: Mapping[str, str],
    *,
    force: bool = False,
    clock: Clock | None = None,
) -> UndoReport:
    """Re-apply what the latest ``gm undo`` of run ``run_ref`` reverted, oldest first.

    Raises:
        UserError: nothing to redo, or a file changed since the undo (without ``force``).
        RunLeased: the run is being executed right now.
    """
    clock = clock or SystemClock()
    workspace = Path(await anyio.Path(workspace).resolve())
    async with _held_run(workspace, run_ref, environ, clock) as held:
        reverted = [p for p in held.patches if p.status == "reverted"]
        if not reverted:
            raise UserError(f"run {held.run_id} has nothing to redo: no undo is in effect")
        undo_id = max(reverted, key=lambda p: p.seq).undo_id or ""
        targets = [p for p in reverted if p.undo_id == undo_id]
        blobs = await _blobs(held.journal, targets)
        if not force:
            await _check_undone_state(workspace, targets, blobs)
        files: list[str] = []
        for patch in targets:
            records = await _apply(workspace, _changes(patch, blobs), force)
            files += [r.path for r in records]
            event = PatchReapplied(
                patch_id=patch.patch_id, undo_id=undo_id, files=records, forced=force
            )
            owner = held.run_of[patch.patch_id]
            await held.journal.append([new_event(clock, owner, "user", event)])
        patches = tuple(p.patch_id for p in targets)
        return UndoReport(held.run_id, undo_id, patches, tuple(dict.fromkeys(files)))


async def _apply(
    workspace: Path, changes: list[PlannedChange], force: bool
) -> tuple[FileChange, ...]:
    try:
        return await anyio.to_thread.run_sync(
            lambda: apply_changes(workspace, changes, force=force, skip_done=True)
        )
    except PatchError as exc:
        raise UserError(f"{exc}; nothing more was changed") from exc


def _net_changes(targets: Sequence[PatchView], blobs: Mapping[str, bytes]) -> list[PlannedChange]:
    """One change per path from its state before the first patch to after the last."""
    first: dict[str, PlannedChange] = {}
    last: dict[str, PlannedChange] = {}
    for patch in targets:
        for change in _changes(patch, blobs):
            for path in {change.path, change.source_path}:
                first.setdefault(path, change)
                last[path] = change
    net: list[PlannedChange] = []
    for path, change in last.items():
        start = first[path]
        after, mode = (change.after, change.after_mode) if path == change.path else (None, None)
        before, before_mode = (
            (start.before, start.before_mode) if path == start.source_path else (None, None)
        )
        net.append(PlannedChange(path, "modify", before, after, before_mode, mode))
    return net


async def _check_final_state(
    workspace: Path, targets: Sequence[PatchView], blobs: Mapping[str, bytes], verb: str
) -> None:
    net = _net_changes(targets, blobs)
    at_result = await anyio.to_thread.run_sync(
        check_changes, workspace, _as_states([c.invert() for c in net])
    )
    # A file already back at its state before the run is fine: an undo a crash cut
    # off is finished by running it again.
    at_start = await anyio.to_thread.run_sync(check_changes, workspace, _as_states(net))
    mismatched = {m.path for m in at_result} & {m.path for m in at_start}
    if mismatched:
        raise _refusal(sorted(mismatched), verb)


async def _check_undone_state(
    workspace: Path, targets: Sequence[PatchView], blobs: Mapping[str, bytes]
) -> None:
    net = _net_changes(targets, blobs)
    at_undone = await anyio.to_thread.run_sync(check_changes, workspace, _as_states(net))
    at_result = await anyio.to_thread.run_sync(
        check_changes, workspace, _as_states([c.invert() for c in net])
    )
    mismatched = {m.path for m in at_undone} & {m.path for m in at_result}
    if mismatched:
        raise _refusal(sorted(mismatched), "redo")


def _as_states(changes: Sequence[PlannedChange]) -> list[PlannedChange]:
    """Changes reduced to "this path must hold this content and mode" checks."""
    return [
        PlannedChange(c.path, "modify", c.before, c.after, c.before_mode, c.after_mode)
        for c in changes
    ]
