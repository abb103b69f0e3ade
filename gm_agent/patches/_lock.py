"""The workspace writer lock: one process changes files at a time.

An advisory ``flock(2)`` on ``.gm/writer.lock``; the kernel holds it while it
applies a patch or runs a shell command, ``gm undo``/``gm redo`` while they
revert. The holder writes its name into the file so a waiter can say who it
waits for. The kernel drops the lock when its process dies, so a crash never
leaves the workspace locked.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType

import anyio

from gm_agent.clock import Clock
from gm_agent.errors import PatchError

__all__ = ["WriterLock"]

POLL_S = 0.05


class WriterLock:
    """``async with WriterLock(path, owner, clock):`` holds the workspace's writer lock.

    Args:
        path: the lock file, ``<workspace>/.gm/writer.lock``.
        owner: who holds it, for others' messages.
        clock: for waiting.
        timeout_s: how long to wait for another holder, in seconds.
        on_wait: called with the holder's name when the lock is found taken, and
            with ``None`` when the wait is over (taken at last, or timed out), so
            a run can show that it queues for the writer.

    Raises (on entry):
        PatchError: another process held the lock for ``timeout_s``; names it.
    """

    def __init__(
        self,
        path: Path,
        owner: str,
        clock: Clock,
        timeout_s: float = 60.0,
        on_wait: Callable[[str | None], Awaitable[None]] | None = None,
    ) -> None:
        self._on_wait = on_wait
        self._path = path
        self._owner = owner
        self._clock = clock
        self._timeout_s = timeout_s
        self._fd: int | None = None
        self.acquired_ns = 0
        """When the lock was taken, by the file system's clock (the lock file's mtime), in ns."""

    async def __aenter__(self) -> WriterLock:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        waited = 0.0
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    holder = (
                        os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
                    )
                    if waited == 0.0 and self._on_wait is not None:
                        await self._on_wait(holder)
                    if waited >= self._timeout_s:
                        raise PatchError(
                            f"the workspace is being changed by {holder} (writer lock held "
                            f"for {self._timeout_s:g} s); try again when it is done"
                        ) from None
                    await self._clock.sleep(POLL_S)
                    waited += POLL_S
        except BaseException:  # timed out, or cancelled while waiting
            os.close(fd)
            raise
        finally:
            if waited and self._on_wait is not None:
                with anyio.CancelScope(shield=True):
                    await self._on_wait(None)
        os.ftruncate(fd, 0)
        os.pwrite(fd, self._owner.encode(), 0)
        self.acquired_ns = os.fstat(fd).st_mtime_ns
        self._fd = fd
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
