"""Changing the workspace: file writes and shell commands, each covered by a patch.

Every change the agent makes goes through :class:`WorkspaceWriter`, under the
workspace writer lock:

- a file write is checked against what the tool read (else ``patch.conflict``),
  then ``patch.intent`` (both contents as blobs), the write, ``patch.applied``;
- a shell command runs between two workspace snapshots, and what it changed is
  a ``patch.applied`` in the same commit as its ``job.result``
  (:mod:`~gm_agent.kernel._shell_writer`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import anyio
import anyio.to_thread

from gm_agent.clock import Clock
from gm_agent.errors import PatchError
from gm_agent.events import (
    FileChange,
    FileMismatch,
    PatchApplied,
    PatchConflict,
    PatchIntent,
)
from gm_agent.faults import crash_point
from gm_agent.jobs import ShellSandbox
from gm_agent.journal import Journal
from gm_agent.kernel._shell_writer import EmitFn, ShellWriter, shell_reply
from gm_agent.patches import (
    PlannedChange,
    Snapshot,
    WriterLock,
    apply_changes,
    check_changes,
    complete_patch,
    plan_write,
)
from gm_agent.settings import GM_DIR, ToolSettings
from gm_agent.tools import FileWrite

__all__ = ["EmitFn", "WorkspaceWriter", "shell_reply"]


def _mismatches(workspace: Path, changes: Sequence[PlannedChange]) -> list[FileMismatch]:
    """Files of ``changes`` in neither their ``before`` nor their ``after`` state."""
    return [
        mismatch
        for change in changes
        if check_changes(workspace, [change.invert()])  # not already done
        for mismatch in check_changes(workspace, [change])
    ]


def _describe(files: Sequence[FileChange]) -> str:
    words = {
        "create": "created",
        "modify": "updated",
        "delete": "deleted",
        "chmod": "changed the mode of",
    }
    return "; ".join(
        f"renamed {f.old_path} to {f.path}" if f.op == "rename" else f"{words[f.op]} {f.path}"
        for f in files
    )


class WorkspaceWriter(ShellWriter):
    """Carries out one run's file writes and shell commands as patches.

    Args:
        journal: the run's journal (for blobs).
        clock: time and ids.
        workspace: the run's (resolved) workspace.
        owner: this process's lease owner id, written into the writer lock.
        emit: the kernel's commit function.
        limits: tool limits (shell output cap).
        environ: the environment shell commands inherit, before secrets are removed.
        sandbox: how shell commands are confined (``None``: a plain process).
        redact: applied to a command's output before it is journaled (secrets).
        on_queue: told when a change waits for another process's writer lock
            (the holder's name), and when the wait is over (``None``).
    """

    def __init__(
        self,
        journal: Journal,
        clock: Clock,
        workspace: Path,
        owner: str,
        emit: EmitFn,
        limits: ToolSettings,
        environ: Mapping[str, str],
        sandbox: ShellSandbox | None = None,
        redact: Callable[[str], str] = str,
        on_queue: Callable[[str | None], Awaitable[None]] | None = None,
    ) -> None:
        self._on_queue = on_queue
        self._journal = journal
        self._clock = clock
        self._workspace = workspace
        self._owner = owner
        self._emit = emit
        self._limits = limits
        self._environ = environ
        self._sandbox = sandbox
        self._redact = redact
        self._snapshot: Snapshot | None = None

    def _lock(self) -> WriterLock:
        return WriterLock(
            self._workspace / GM_DIR / "writer.lock",
            self._owner,
            self._clock,
            on_wait=self._on_queue,
        )

    # -- file writes ---------------------------------------------------------

    async def write(self, write: FileWrite, call_id: str, cause: str | None) -> tuple[bool, str]:
        """Apply a tool's file write as a patch; ``(ok, text for the model)``."""
        try:
            change = await anyio.to_thread.run_sync(
                plan_write, self._workspace, write.target, write.content
            )
        except PatchError as exc:
            return False, str(exc)
        if change.before == change.after:
            return True, f"{change.path} already has exactly this content; nothing changed"
        patch_id = self._clock.new_id()
        if change.before != write.expected_before:  # moved since the tool read it
            as_read = replace(change, before=write.expected_before)
            return await self._conflict(patch_id, call_id, [as_read], cause)
        try:
            async with self._lock():
                return await self._write_locked(change, patch_id, call_id, cause)
        except PatchError as exc:  # the writer lock stayed taken: the model may try again
            return False, str(exc)

    async def _write_locked(
        self, change: PlannedChange, patch_id: str, call_id: str, cause: str | None
    ) -> tuple[bool, str]:
        mismatches = await anyio.to_thread.run_sync(check_changes, self._workspace, [change])
        if mismatches:
            return await self._conflict(patch_id, call_id, [change], cause)
        files = (change.describe(),)
        blobs = [c for c in (change.before, change.after) if c is not None]
        await self._emit(
            [PatchIntent(patch_id=patch_id, call_id=call_id, files=files)], cause, blobs, None
        )
        try:
            await anyio.to_thread.run_sync(apply_changes, self._workspace, [change])
        except PatchError as exc:  # the disk refused: record that the patch did not land
            await self._emit(
                [PatchConflict(patch_id=patch_id, call_id=call_id, mismatches=())], cause, (), None
            )
            return False, str(exc)
        crash_point("patch.after_write")
        await self._emit(
            [PatchApplied(patch_id=patch_id, call_id=call_id, files=files)], cause, (), None
        )
        assert change.after is not None
        return True, f"{_describe(files)} ({len(change.after)} bytes)"

    async def _conflict(
        self,
        patch_id: str,
        call_id: str | None,
        changes: list[PlannedChange],
        cause: str | None,
    ) -> tuple[bool, str]:
        """Record that ``changes`` were not applied: files differ from their ``before`` state
        (a file a crash left already in its ``after`` state is not named)."""
        mismatches = await anyio.to_thread.run_sync(_mismatches, self._workspace, changes)
        await self._emit(
            [PatchConflict(patch_id=patch_id, call_id=call_id, mismatches=tuple(mismatches))],
            cause,
            (),
            None,
        )
        names = ", ".join(repr(m.path) for m in mismatches)
        return False, f"{names} changed on disk since it was read; read it again"

    async def restore(self, changes: Sequence[PlannedChange], force: bool) -> tuple[bool, str]:
        """Apply ``changes`` as one patch of no tool call (a fork's restore); ``(ok, message)``.

        Without ``force`` a file not in its ``before`` state is a ``patch.conflict``.
        """
        patch_id = self._clock.new_id()
        files = tuple(change.describe() for change in changes)
        blobs = [b for c in changes for b in (c.before, c.after) if b is not None]
        async with self._lock():
            mismatches = await anyio.to_thread.run_sync(check_changes, self._workspace, changes)
            if mismatches and not force:
                await self._emit(
                    [PatchConflict(patch_id=patch_id, mismatches=tuple(mismatches))], None, (), None
                )
                names = ", ".join(repr(m.path) for m in mismatches)
                return (
                    False,
                    f"{names} changed since the parent run changed them; fork with --force",
                )
            await self._emit([PatchIntent(patch_id=patch_id, files=files)], None, blobs, None)
            await anyio.to_thread.run_sync(
                lambda: apply_changes(self._workspace, changes, force=force)
            )
            crash_point("patch.after_write")
            await self._emit([PatchApplied(patch_id=patch_id, files=files)], None, (), None)
        return True, _describe(files)

    async def complete(
        self,
        patch_id: str,
        files: Sequence[FileChange],
        call_id: str | None,
        cause: str | None,
        *,
        force: bool = False,
    ) -> tuple[bool, str]:
        """Finish a patch a crash cut off between ``patch.intent`` and ``patch.applied``.

        With ``force`` (a fork's ``--force`` restore), files in neither state are
        overwritten too.
        """
        shas = {s for f in files for s in (f.before_sha256, f.after_sha256) if s is not None}
        blobs = await self._journal.get_blobs(shas)
        changes = [PlannedChange.from_record(f, blobs) for f in files]
        async with self._lock():
            if force:
                await anyio.to_thread.run_sync(
                    lambda: apply_changes(self._workspace, changes, force=True, skip_done=True)
                )
            elif not await anyio.to_thread.run_sync(complete_patch, self._workspace, changes):
                return await self._conflict(patch_id, call_id, changes, cause)
            await self._emit(
                [PatchApplied(patch_id=patch_id, call_id=call_id, files=tuple(files))],
                cause,
                (),
                None,
            )
        return True, _describe(files)
