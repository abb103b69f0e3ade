"""Changing the workspace: file writes and shell commands, each covered by a patch.

Every change the agent makes goes through :class:`WorkspaceWriter`, under the
workspace writer lock:

- a file write is checked against what the tool read (else ``patch.conflict``),
  then ``patch.intent`` (both contents as blobs), the write, ``patch.applied``;
- a shell command runs between two workspace snapshots; the contents the
  command could change are stored as blobs before it starts, and what it changed
  is recorded as a ``patch.applied`` (source ``job``) in the same commit as its
  ``job.result``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import anyio
import anyio.to_thread

from gm_agent.clock import Clock
from gm_agent.errors import PatchError
from gm_agent.events import (
    AnyEventData,
    Event,
    EventSource,
    FileChange,
    FileMismatch,
    JobAmbiguous,
    JobResult,
    PatchApplied,
    PatchConflict,
    PatchIntent,
)
from gm_agent.faults import crash_point
from gm_agent.jobs import JobOutcome, JobRunner, JobSpec, ShellSandbox, run_shell, scrub_env
from gm_agent.journal import Journal
from gm_agent.kernel.state import JobView
from gm_agent.patches import (
    PlannedChange,
    Snapshot,
    WriterLock,
    apply_changes,
    check_changes,
    complete_patch,
    diff_snapshots,
    drop_visibility_changes,
    manifest_of,
    plan_write,
    sha256_hex,
    snapshot_from_manifest,
    take_snapshot,
)
from gm_agent.settings import GM_DIR, ToolSettings
from gm_agent.tools import FileWrite

__all__ = ["EmitFn", "WorkspaceWriter", "shell_reply"]

EmitFn = Callable[
    [Sequence[AnyEventData], str | None, Iterable[bytes], EventSource | None],
    Awaitable[list[Event]],
]
"""The kernel's commit: ``(datas, cause, blobs, source) -> committed events``."""


def shell_reply(exit_code: int | None, error: str | None, output: str) -> str:
    """What the model sees of a finished command: its exit code (or timeout), then its output."""
    header = error if error and "timed out" in error else f"exit code {exit_code}"
    return f"{header}\n{output}".rstrip("\n")


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


class WorkspaceWriter:
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

    # -- shell commands --------------------------------------------------------

    async def shell(
        self, spec: JobSpec, cause: str | None, *, intent_committed: bool = False
    ) -> tuple[bool, str]:
        """Run a shell job between two snapshots; ``(ok, text for the model)``."""
        command = str(spec.args["command"])
        timeout_s = float(spec.args["timeout_s"])  # type: ignore[arg-type]
        sandbox = self._sandbox
        if sandbox is not None and spec.args.get("network") is True:
            sandbox = sandbox.with_network()  # a rule allowed it (see the loop's _shell)
        try:
            async with self._lock() as lock:
                before, contents = await anyio.to_thread.run_sync(
                    take_snapshot, self._workspace, self._snapshot
                )
                manifest = manifest_of(before)
                # What the command may change, and the list of it, are durable before it runs.
                await self._emit([], cause, [*contents.values(), manifest], None)
                if not intent_committed:
                    spec = replace(spec, before_snapshot=sha256_hex(manifest))

                async def effect() -> JobOutcome:
                    result = await run_shell(
                        command,
                        self._workspace,
                        timeout_s=timeout_s,
                        env=scrub_env(self._environ),
                        output_cap_bytes=self._limits.shell_output_cap_bytes,
                        sandbox=sandbox,
                    )
                    error = None
                    if result.timed_out:
                        error = f"timed out after {timeout_s:g} s; the command was killed"
                    elif result.exit_code != 0:
                        error = f"exit code {result.exit_code}"
                    after, new = await anyio.to_thread.run_sync(
                        take_snapshot, self._workspace, before
                    )
                    self._snapshot = after
                    changes, uncovered = diff_snapshots(before, after)
                    changes = await anyio.to_thread.run_sync(
                        drop_visibility_changes, self._workspace, changes, lock.acquired_ns
                    )
                    output = self._redact(result.output)
                    if uncovered:
                        output += f"\n[gm: changes to {', '.join(uncovered)} are over the snapshot size cap and cannot be undone]"
                    patch = PatchApplied(
                        patch_id=self._clock.new_id(), call_id=spec.call_id, files=tuple(changes)
                    )
                    needed = {f.after_sha256 for f in changes}
                    return JobOutcome(
                        ok=error is None,
                        output=output,
                        error=error,
                        exit_code=result.exit_code,
                        extra=(patch,) if changes else (),
                        blobs=tuple(data for sha, data in new.items() if sha in needed),
                    )

                async def emit(datas: Sequence[AnyEventData], blobs: Sequence[bytes]) -> None:
                    await self._emit(datas, cause, blobs, "job")

                try:
                    outcome = await JobRunner(emit, self._clock).run(
                        spec, effect, intent_committed=intent_committed
                    )
                except anyio.get_cancelled_exc_class():
                    with anyio.CancelScope(
                        shield=True
                    ):  # what it changed before the stop is a patch
                        await self._record_changes_since(before, spec.call_id, cause)
                    raise
        except PatchError as exc:  # the writer lock stayed taken
            return False, str(exc)
        return outcome.ok, shell_reply(outcome.exit_code, outcome.error, outcome.output)

    async def _record_changes_since(
        self, before: Snapshot, call_id: str | None, cause: str | None
    ) -> None:
        after, new = await anyio.to_thread.run_sync(take_snapshot, self._workspace, before)
        self._snapshot = after
        changes, _ = diff_snapshots(before, after)
        if changes:
            patch = PatchApplied(
                patch_id=self._clock.new_id(), call_id=call_id, files=tuple(changes)
            )
            needed = {f.after_sha256 for f in changes}
            blobs = [data for sha, data in new.items() if sha in needed]
            await self._emit([patch], cause, blobs, "job")

    async def recover_ambiguous(self, job: JobView, message: str, cause: str | None) -> None:
        """Record a shell job a crash cut off: ``job.ambiguous``, and as a patch whatever
        changed in the workspace since the snapshot taken just before it started.

        The patch may include edits made by others during the stop; it is what
        ``gm undo`` needs to restore the workspace byte for byte either way.
        """
        ambiguous = JobAmbiguous(
            job_id=job.job_id, key=job.key, job_kind=job.job_kind, message=message
        )
        if job.before_snapshot is None:
            await self._emit([ambiguous], cause, (), None)
            return
        manifest = await self._journal.get_blob(job.before_snapshot)
        async with self._lock():
            now, contents = await anyio.to_thread.run_sync(take_snapshot, self._workspace, None)
            self._snapshot = now
            changes, _ = diff_snapshots(snapshot_from_manifest(manifest), now)
            extra: list[AnyEventData] = []
            if changes:
                patch_id = self._clock.new_id()
                extra.append(
                    PatchApplied(patch_id=patch_id, call_id=job.call_id, files=tuple(changes))
                )
            needed = {f.after_sha256 for f in changes}
            blobs = [data for sha, data in contents.items() if sha in needed]
            await self._emit([*extra, ambiguous], cause, blobs, "job")

    async def served(self, result: JobResult) -> tuple[bool, str]:
        """A recorded shell result as the model would have seen it (never re-run)."""
        output = result.output
        if result.output_blob is not None:
            output = (await self._journal.get_blob(result.output_blob)).decode("utf-8", "replace")
        return result.ok, shell_reply(result.exit_code, result.error, output)
