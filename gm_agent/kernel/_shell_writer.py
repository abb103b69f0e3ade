"""Shell commands as patches: the part of the workspace writer that runs them.

A command runs under the workspace writer lock, between two workspace
snapshots; the contents it could change are stored as blobs before it starts,
and what it changed is recorded as a ``patch.applied`` (source ``job``) in the
same commit as its ``job.result``. A command a crash cut off is settled from
the snapshot its ``job.intent`` names (:meth:`ShellWriter.record_cut_off`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path

import anyio
import anyio.to_thread

from gm_agent.clock import Clock
from gm_agent.errors import JobError, PatchError
from gm_agent.events import (
    AnyEventData,
    Event,
    EventSource,
    FileChange,
    JobAmbiguous,
    JobResult,
    PatchApplied,
)
from gm_agent.jobs import (
    JobOutcome,
    JobRunner,
    JobSpec,
    RetryPolicy,
    ShellSandbox,
    run_shell,
    scrub_env,
)
from gm_agent.journal import Journal
from gm_agent.kernel.state import JobView
from gm_agent.patches import (
    Snapshot,
    SnapshotEntry,
    WriterLock,
    diff_snapshots,
    drop_visibility_changes,
    manifest_of,
    sha256_hex,
    snapshot_from_manifest,
    take_snapshot,
)
from gm_agent.settings import ToolSettings

__all__ = ["EmitFn", "ShellWriter", "shell_reply"]

EmitFn = Callable[
    [Sequence[AnyEventData], str | None, Iterable[bytes], EventSource | None],
    Awaitable[list[Event]],
]
"""The kernel's commit: ``(datas, cause, blobs, source) -> committed events``."""


class _FailedAttempt(JobError):
    """A scheme step's command failed and has attempts left (see ``shell(retry=...)``)."""

    retryable = True


def shell_reply(exit_code: int | None, error: str | None, output: str) -> str:
    """What the model sees of a finished command: its exit code (or timeout), then its output."""
    header = error if error and "timed out" in error else f"exit code {exit_code}"
    return f"{header}\n{output}".rstrip("\n")


class ShellWriter:
    """The shell commands of :class:`~gm_agent.kernel._writer.WorkspaceWriter`
    (which sets these attributes and makes the lock)."""

    _journal: Journal
    _clock: Clock
    _workspace: Path
    _emit: EmitFn
    _limits: ToolSettings
    _environ: Mapping[str, str]
    _sandbox: ShellSandbox | None
    _redact: Callable[[str], str]
    _snapshot: Snapshot | None

    def _lock(self) -> WriterLock:
        raise NotImplementedError

    async def shell(
        self,
        spec: JobSpec,
        cause: str | None,
        *,
        intent_committed: bool = False,
        retry: RetryPolicy | None = None,
    ) -> tuple[bool, str]:
        """Run a shell job between two snapshots; ``(ok, text for the model)``.

        With ``retry`` (a scheme step's), a non-zero exit or a timeout is a
        retryable failure (``job.attempt_failed``) until the last attempt. Each
        attempt holds the writer lock and is its own patch; the lock is free
        while the backoff waits. When the lock stays taken before the first
        attempt, nothing is journaled and the message says so (``ok`` false).
        """
        hold = _Hold()
        try:
            try:
                contents = await self._take(hold)
            except PatchError as exc:  # the writer lock stayed taken: nothing started
                return False, str(exc)
            manifest = manifest_of(hold.before)
            # What the command may change, and the list of it, are durable before it runs.
            await self._emit([], cause, [*contents.values(), manifest], None)
            if not intent_committed:
                spec = replace(spec, before_snapshot=sha256_hex(manifest))

            async def emit(datas: Sequence[AnyEventData], blobs: Sequence[bytes]) -> None:
                await self._emit(datas, cause, blobs, "job")

            try:
                outcome = await JobRunner(emit, self._clock, retry=retry).run(
                    spec,
                    self._attempts(spec, hold, cause, retry),
                    intent_committed=intent_committed,
                )
            except anyio.get_cancelled_exc_class():
                if hold.lock is not None:  # what it changed before the stop is a patch
                    with anyio.CancelScope(shield=True):
                        patch, blobs, _ = await self._changes(hold, spec.call_id)
                        if patch is not None:
                            await self._emit([patch], cause, blobs, "job")
                raise
        finally:
            await hold.release()
        return outcome.ok, shell_reply(outcome.exit_code, outcome.error, outcome.output)

    async def _take(self, hold: _Hold) -> dict[str, bytes]:
        """Take the writer lock into ``hold`` and the snapshot before the command;
        the contents read now (to store as blobs before the command runs)."""
        await hold.take(self._lock())
        hold.before, contents = await anyio.to_thread.run_sync(
            take_snapshot, self._workspace, self._snapshot
        )
        return contents

    def _attempts(
        self, spec: JobSpec, hold: _Hold, cause: str | None, retry: RetryPolicy | None
    ) -> Callable[[], Awaitable[JobOutcome]]:
        """The effect of shell job ``spec``: one attempt a call. A failed attempt
        with attempts left commits its patch and frees the lock, then raises."""
        command = str(spec.args["command"])
        timeout_s = float(spec.args["timeout_s"])  # type: ignore[arg-type]
        sandbox = self._sandbox
        if sandbox is not None and spec.args.get("network") is True:
            sandbox = sandbox.with_network()  # a rule allowed it (see the loop's _shell)
        tries = [0]

        async def effect() -> JobOutcome:
            if hold.lock is None:  # a retry: take the lock again after the backoff
                await self._emit([], cause, (await self._take(hold)).values(), None)
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
            tries[0] += 1
            patch, blobs, uncovered = await self._changes(hold, spec.call_id)
            if error is not None and retry is not None and tries[0] < retry.max_attempts:
                if patch is not None:
                    await self._emit([patch], cause, blobs, "job")
                await hold.release()
                raise _FailedAttempt(f"{error}: {result.output[-200:].strip()}")
            output = self._redact(result.output)
            if uncovered:
                output += f"\n[gm: changes to {', '.join(uncovered)} are over the snapshot size cap and cannot be undone]"
            return JobOutcome(
                ok=error is None,
                output=output,
                error=error,
                exit_code=result.exit_code,
                extra=(patch,) if patch is not None else (),
                blobs=blobs,
            )

        return effect

    async def _changes(
        self, hold: _Hold, call_id: str | None
    ) -> tuple[PatchApplied | None, tuple[bytes, ...], list[str]]:
        """What changed since ``hold``'s snapshot: its patch (``None``: nothing), the
        new contents it needs as blobs, and changed files over the snapshot caps."""
        assert hold.lock is not None
        after, new = await anyio.to_thread.run_sync(take_snapshot, self._workspace, hold.before)
        self._snapshot = after
        changes, uncovered = diff_snapshots(hold.before, after)
        changes = await anyio.to_thread.run_sync(
            drop_visibility_changes, self._workspace, changes, hold.lock.acquired_ns
        )
        if not changes:
            return None, (), uncovered
        patch = PatchApplied(patch_id=self._clock.new_id(), call_id=call_id, files=tuple(changes))
        needed = {f.after_sha256 for f in changes}
        return patch, tuple(data for sha, data in new.items() if sha in needed), uncovered

    async def recover_ambiguous(
        self,
        job: JobView,
        message: str,
        cause: str | None,
        covered: Sequence[FileChange] = (),
    ) -> None:
        """Record a shell job a crash cut off: ``job.ambiguous``, and as a patch
        whatever changed since it started (see :meth:`record_cut_off`)."""
        ambiguous = JobAmbiguous(
            job_id=job.job_id, key=job.key, job_kind=job.job_kind, message=message
        )
        await self.record_cut_off(job, cause, covered, then=[ambiguous])

    async def record_cut_off(
        self,
        job: JobView,
        cause: str | None,
        covered: Sequence[FileChange] = (),
        then: Sequence[AnyEventData] = (),
    ) -> None:
        """Record as a patch whatever changed in the workspace since the snapshot
        taken just before shell job ``job`` started (a crash cut it off), and
        ``then`` events in the same commit.

        ``covered`` are the file changes patches recorded since the job started
        (an attempt of a retried step, an earlier recovery): they are not
        recorded twice. The patch may include edits made by others during the
        stop; it is what ``gm undo`` needs to restore the workspace byte for byte
        either way.
        """
        if job.before_snapshot is None:
            if then:
                await self._emit(then, cause, (), None)
            return
        manifest = await self._journal.get_blob(job.before_snapshot)
        async with self._lock():
            now, contents = await anyio.to_thread.run_sync(take_snapshot, self._workspace, None)
            self._snapshot = now
            base = _advanced(snapshot_from_manifest(manifest), covered)
            changes, _ = diff_snapshots(base, now)
            extra: list[AnyEventData] = []
            if changes:
                patch_id = self._clock.new_id()
                extra.append(
                    PatchApplied(patch_id=patch_id, call_id=job.call_id, files=tuple(changes))
                )
            needed = {f.after_sha256 for f in changes}
            blobs = [data for sha, data in contents.items() if sha in needed]
            if extra or then:
                await self._emit([*extra, *then], cause, blobs, "job")

    async def served(self, result: JobResult) -> tuple[bool, str]:
        """A recorded shell result as the model would have seen it (never re-run)."""
        output = result.output
        if result.output_blob is not None:
            output = (await self._journal.get_blob(result.output_blob)).decode("utf-8", "replace")
        return result.ok, shell_reply(result.exit_code, result.error, output)


class _Hold:
    """A shell job's turn at the writer lock: taken for each attempt (``lock``, and
    ``before``, the workspace when it was taken), free while a retry's backoff waits."""

    def __init__(self) -> None:
        self._stack = AsyncExitStack()
        self.lock: WriterLock | None = None
        self.before = Snapshot()

    async def take(self, lock: WriterLock) -> None:
        """Wait for ``lock`` (``PatchError`` when another process keeps it)."""
        self.lock = await self._stack.enter_async_context(lock)

    async def release(self) -> None:
        """Free the lock, if held."""
        self.lock = None
        await self._stack.aclose()


def _advanced(snapshot: Snapshot, files: Iterable[FileChange]) -> Snapshot:
    """``snapshot`` (rebuilt from a manifest) with recorded file changes applied,
    in order: the workspace as the journal already accounts for it."""
    entries = dict(snapshot.entries)
    for change in files:
        if change.old_path is not None:
            entries.pop(change.old_path, None)
        if change.after_sha256 is None:
            entries.pop(change.path, None)
            continue
        old = entries.get(change.path)
        mode = change.mode if change.mode is not None else old.mode if old is not None else 0
        entries[change.path] = SnapshotEntry(-1, -1, -1, -1, mode, change.after_sha256)
    return Snapshot(entries)
