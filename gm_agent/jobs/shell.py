"""Shell commands as processes: a timeout, an output cap, and no stray children.

Each command runs with ``/bin/sh -c`` in its own session (so its own process
group). On timeout or cancellation the whole group gets SIGTERM, then SIGKILL
after a grace period; when the command exits, whatever it left running in its
group is killed too.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.abc import Process

from gm_agent.jobs.sandbox import ShellSandbox

__all__ = [
    "DEFAULT_GRACE_S",
    "ShellResult",
    "is_secret_name",
    "run_shell",
    "scrub_env",
]

DEFAULT_GRACE_S = 2.0
"""Seconds between SIGTERM and SIGKILL when a command is stopped."""

GROUP_POLL_S = 0.02
"""How often to look whether a stopped process group is empty yet."""

_SECRET_WORDS = frozenset(
    {
        "KEY", "KEYS", "APIKEY", "TOKEN", "TOKENS", "SECRET", "SECRETS", "PASSWORD",
        "PASSWD", "PASS", "CREDENTIAL", "CREDENTIALS", "AUTH", "COOKIE", "SESSION", "DSN",
    }
)  # fmt: skip
_SECRET_SUBSTRINGS = re.compile(
    r"API_?KEY|PRIVATE_?KEY|ACCESS_?KEY|DATABASE_URL|SECRET|TOKEN|PASSWORD", re.I
)


def is_secret_name(name: str) -> bool:
    """Whether an environment variable's name looks like it holds a secret.

    True when one of its ``_``-separated words is KEY, TOKEN, SECRET, PASSWORD,
    PASSWD, PASS, CREDENTIAL(S), AUTH, COOKIE, SESSION or DSN, or when it contains
    API_KEY, PRIVATE_KEY, ACCESS_KEY, DATABASE_URL, SECRET, TOKEN or PASSWORD
    (any case): ``OPENAI_API_KEY``, ``AZURE_OPENAI_KEY``, ``AWS_ACCESS_KEY_ID``,
    ``GITHUB_TOKEN``, ``SSH_AUTH_SOCK``, ``DATABASE_URL``, ``NPM_AUTH``...
    """
    words = set(name.upper().split("_"))
    return bool(words & _SECRET_WORDS) or bool(_SECRET_SUBSTRINGS.search(name))


def scrub_env(environ: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``environ`` without the variables :func:`is_secret_name` flags.

    ARCHITECTURE.md: secrets never reach a tool's environment. A deny-list rather
    than an allow-list, so toolchains keep ``JAVA_HOME``, ``GOPATH``, ``CARGO_HOME``.
    """
    return {k: v for k, v in environ.items() if not is_secret_name(k)}


class _HeadTail:
    """Keeps the first and last ``cap_bytes // 2`` bytes of a stream and counts the rest."""

    def __init__(self, cap_bytes: int) -> None:
        self.half = max(cap_bytes // 2, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.half - len(self.head)
        if room > 0:
            self.head.extend(chunk[:room])
            chunk = chunk[room:]
        self.tail.extend(chunk)
        del self.tail[: max(len(self.tail) - self.half, 0)]

    def text(self) -> tuple[str, bool]:
        """The kept text (UTF-8, invalid bytes replaced), and whether the middle was cut."""
        omitted = self.total - len(self.head) - len(self.tail)
        head = self.head.decode("utf-8", "replace")
        tail = self.tail.decode("utf-8", "replace")
        if omitted <= 0:
            return head + tail, False
        return f"{head}\n[... {omitted} bytes omitted ...]\n{tail}", True


@dataclass(frozen=True)
class ShellResult:
    """How a command ended.

    Attributes:
        exit_code: the process's exit status; negative is the signal that ended it.
        output: stdout and stderr interleaved, its head and tail kept within
            ``output_cap_bytes``, with a marker saying how many bytes were cut.
        timed_out: the command ran past its timeout and was killed.
        truncated: the output was cut.
    """

    exit_code: int | None
    output: str
    timed_out: bool
    truncated: bool


def _signal_group(process: Process, sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(process: Process) -> bool:
    """Whether a process of the command's group still runs (zombies do not count).

    A zombie may wait for a long time: bubblewrap's inner process is reaped by
    PID 1, and in a container PID 1 may never reap anything. ``/proc/PID/stat``
    gives each process's state and group (proc(5)); without ``/proc``, any
    member at all counts (``killpg(pgid, 0)``).
    """
    try:
        entries = os.listdir("/proc")
    except OSError:
        entries = None
    if entries is None:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if fields[2] == str(process.pid).encode() and fields[0] != b"Z":
            return True
    return False


async def _stop_group(process: Process, grace_s: float) -> None:
    """SIGTERM the whole group, give every member ``grace_s`` seconds, then SIGKILL."""
    _signal_group(process, signal.SIGTERM)
    with anyio.move_on_after(grace_s, shield=True):
        await process.wait()
        # The leader may be gone while its children clean up; nothing signals an empty group.
        while _group_alive(process):  # noqa: ASYNC110
            await anyio.sleep(GROUP_POLL_S)
    _signal_group(process, signal.SIGKILL)
    with anyio.CancelScope(shield=True):
        await process.wait()


async def run_shell(
    command: str,
    cwd: Path,
    *,
    timeout_s: float,
    env: Mapping[str, str],
    output_cap_bytes: int,
    grace_s: float = DEFAULT_GRACE_S,
    sandbox: ShellSandbox | None = None,
) -> ShellResult:
    """Run ``command`` with ``/bin/sh -c`` in ``cwd``, confined by ``sandbox`` when given.

    Args:
        command: the shell command line.
        cwd: working directory (the workspace).
        timeout_s: seconds before the process group is stopped.
        env: the complete environment for the command (scrub it first).
        output_cap_bytes: most bytes of output kept for the result.
        grace_s: seconds between SIGTERM and SIGKILL.
        sandbox: how to confine it (see :mod:`gm_agent.jobs.sandbox`); ``None``
            runs a plain ``/bin/sh -c`` with no limits.

    Cancellation stops the process group the same way and re-raises.
    """
    kept = _HeadTail(output_cap_bytes)
    timed_out = False
    drained = anyio.Event()
    argv = ["/bin/sh", "-c", command] if sandbox is None else sandbox.argv(command, cwd)
    process = await anyio.open_process(
        argv,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    async def drain() -> None:
        assert process.stdout is not None
        async for chunk in process.stdout:
            kept.feed(chunk)
        drained.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(drain)
            with anyio.move_on_after(timeout_s) as scope:
                await process.wait()
            timed_out = scope.cancelled_caught
            # Whatever the command left running in its group goes with it.
            await _stop_group(process, grace_s)
            with anyio.move_on_after(1.0):  # a grandchild outside the group may hold the pipe
                await drained.wait()
            tg.cancel_scope.cancel()
    finally:
        await _stop_group(process, grace_s)
        with anyio.CancelScope(shield=True):
            await process.aclose()  # closes the pipe even if a grandchild still holds it
    output, truncated = kept.text()
    exit_code = process.returncode
    return ShellResult(exit_code=exit_code, output=output, timed_out=timed_out, truncated=truncated)
