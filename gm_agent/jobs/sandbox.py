"""The sandbox shell commands run in: bubblewrap, else Landlock, else none.

Under bubblewrap (``bwrap``, the sandbox Flatpak uses) a command sees:

- the whole file system read-only, the workspace writable, and the workspace's
  ``.git/`` and ``.gm/`` read-only again (the journal and the repository are
  not the command's to change);
- a private ``/tmp`` (what the host's held is there, read-only), its own
  ``/dev`` and ``/proc``;
- new PID, IPC, UTS and network namespaces: no network at all unless allowed,
  not even 127.0.0.1, and no signal can reach gm's own processes;
- ``--die-with-parent``: if gm dies, the sandbox dies with it.

Inside, ``ulimit`` caps the size of any file the command writes and its
address space (rlimits RLIMIT_FSIZE and RLIMIT_AS; POSIX ``ulimit``).

:func:`probe_sandbox` runs ``true`` in the sandbox once to learn whether it
works on this machine (bubblewrap needs user namespaces when not run as root;
some containers forbid them). Where it does not, the fallback is Landlock
(:mod:`gm_agent.jobs._landlock`: the workspace writable but ``.git/`` and
``.gm/`` not, the rest read-only, no TCP), which an unprivileged process can
use on Linux 5.13 and later. Where neither works, commands run unconfined,
every shell call needs approval, and the run's journal says so
(``sandbox.probed``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

__all__ = ["SandboxBackend", "SandboxWanted", "ShellSandbox", "probe_sandbox"]

SandboxBackend = Literal["bubblewrap", "landlock", "none"]
SandboxWanted = Literal["auto", "bubblewrap", "landlock", "none"]

_LANDLOCK_SCRIPT = str(Path(__file__).with_name("_landlock.py"))

_PROTECTED = (".git", ".gm")
_MAX_TMP_ENTRIES = 512


@dataclass(frozen=True)
class ShellSandbox:
    """How shell commands are confined.

    Attributes:
        backend: ``bubblewrap``, ``landlock``, or ``none`` (commands run as plain
            processes).
        network: allow network access from inside the sandbox.
        max_file_bytes: the largest file a command may write (RLIMIT_FSIZE), bytes.
        max_memory_bytes: the command's address space (RLIMIT_AS), bytes; ``None``
            for no limit.
        detail: why the backend is what it is (for ``gm doctor`` and the journal).
    """

    backend: SandboxBackend
    network: bool = False
    max_file_bytes: int = 1 << 30
    max_memory_bytes: int | None = None
    detail: str = ""

    @property
    def effective(self) -> bool:
        """Whether commands are actually confined."""
        return self.backend != "none"

    def argv(self, command: str, workspace: Path) -> list[str]:
        """The process to start for ``command`` run in ``workspace``."""
        limits = [f"ulimit -f {max(self.max_file_bytes // 512, 1)}"]  # in 512-byte blocks
        if self.max_memory_bytes is not None:
            limits.append(f"ulimit -v {max(self.max_memory_bytes // 1024, 1)}")  # in KiB
        shell = ["/bin/sh", "-c", " && ".join([*limits, 'exec /bin/sh -c "$1"']), "sh", command]
        if self.backend == "none":
            return shell
        if self.backend == "landlock":
            return [*landlock_prefix(workspace, network=self.network), *shell]
        return [*bubblewrap_prefix(workspace, network=self.network), *shell]

    def with_network(self) -> ShellSandbox:
        """The same sandbox, letting commands reach the network."""
        return replace(self, network=True)


def landlock_prefix(workspace: Path, *, network: bool) -> list[str]:
    """The Landlock helper and its options, up to the ``--`` before the command.

    ``-I -S``: the helper runs isolated from the environment and site packages,
    and starts in a few tens of milliseconds.
    """
    options = [sys.executable, "-I", "-S", _LANDLOCK_SCRIPT, "--workspace", str(workspace)]
    return [*options, *(["--network"] if network else []), "--"]


def bubblewrap_prefix(workspace: Path, *, network: bool) -> list[str]:
    """``bwrap`` and its options, up to the ``--`` before the confined command.

    Option meanings: bubblewrap's manual, bwrap(1).
    """
    options = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    options += ["--tmpfs", "/tmp", *_host_tmp(workspace), "--bind", str(workspace), str(workspace)]
    for name in _PROTECTED:
        inside = workspace / name
        if inside.exists():
            options += ["--ro-bind", str(inside), str(inside)]
    options += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if not network:
        options.append("--unshare-net")
    options += ["--die-with-parent", "--chdir", str(workspace), "--"]
    return options


def _host_tmp(workspace: Path) -> list[str]:
    """What was in the host's ``/tmp``, read-only over the private one.

    A project, its virtual environment or its tools may live under ``/tmp``
    (CI checkouts often do); an empty private ``/tmp`` would hide them. New
    files go to the private tmpfs; existing ones cannot be changed. bubblewrap
    0.8 has no overlay mount, which would make them changeable copies.

    At most ``_MAX_TMP_ENTRIES`` entries are bound (each is a mount). On a
    crowded ``/tmp`` the ones that hold the workspace, this Python, the current
    directory or a ``PATH`` directory come first, so the command still finds
    its project and its tools.
    """
    try:
        entries = sorted(os.listdir("/tmp"))
    except OSError:
        return []
    needed = {str(workspace), sys.prefix, sys.executable, os.environ.get("PWD", "")}
    needed.update(os.environ.get("PATH", "").split(os.pathsep))
    first = {p.split("/")[2] for p in needed if p.startswith("/tmp/") and len(p) > 5}
    entries.sort(key=lambda e: e not in first)  # stable: the rest stay sorted
    kept = entries[:_MAX_TMP_ENTRIES]
    return [arg for e in kept for arg in ("--ro-bind-try", f"/tmp/{e}", f"/tmp/{e}")]


def probe_sandbox(
    workspace: Path,
    *,
    wanted: SandboxWanted = "auto",
    network: bool = False,
    max_file_bytes: int = 1 << 30,
    max_memory_bytes: int | None = None,
    timeout_s: float = 10.0,
) -> ShellSandbox:
    """The sandbox that works here: bubblewrap, else Landlock, else none.

    Each candidate is tried by running ``/bin/true`` in it.

    Args:
        workspace: the directory commands run in.
        wanted: ``auto`` (the first that works), ``bubblewrap`` or ``landlock``
            (only that one; the caller should refuse to run unconfined if it
            does not work), or ``none``.
        network: let commands reach the network.
        max_file_bytes, max_memory_bytes: rlimits, see :class:`ShellSandbox`.
        timeout_s: how long each probe may take, in seconds.

    Blocks for a process start or two (milliseconds); call it from a thread.
    """

    def made(backend: SandboxBackend, detail: str) -> ShellSandbox:
        return ShellSandbox(backend, network, max_file_bytes, max_memory_bytes, detail)

    if wanted == "none":
        return made("none", 'turned off in gm.toml ([sandbox] backend = "none")')
    why_not: list[str] = []
    if wanted in ("auto", "bubblewrap"):
        failure = _try(bubblewrap_prefix(workspace, network=network), "bubblewrap", timeout_s)
        if failure is None:
            net = "with network" if network else "no network"
            return made("bubblewrap", f"bubblewrap: read-only system, writable workspace, {net}")
        why_not.append(failure)
    if wanted in ("auto", "landlock"):
        failure = _try(landlock_prefix(workspace, network=network), "Landlock", timeout_s)
        if failure is None:
            net = "with network" if network else "no TCP"
            return made(
                "landlock",
                f"Landlock: read-only system, writable workspace (not .git/.gm), {net}"
                + (f" ({why_not[0]})" if why_not else ""),
            )
        why_not.append(failure)
    return made("none", "; ".join(why_not))


def _try(prefix: Sequence[str], name: str, timeout_s: float) -> str | None:
    """``None`` when ``/bin/true`` runs under ``prefix``, else why it does not."""
    if shutil.which(prefix[0]) is None:
        return f"{name} is not installed (Debian/Ubuntu: apt install {prefix[0]})"
    try:
        probe = subprocess.run(
            [*prefix, "/bin/true"], capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{name} did not start: {exc}"
    if probe.returncode != 0:
        reason = probe.stderr.strip().splitlines()[-1:] or [f"exit code {probe.returncode}"]
        return f"{name} cannot run here: {reason[0]}"
    return None
