"""Landlock: confine this process, then exec a command (the fallback sandbox).

Run as a script, not imported by gm (it must start fast and needs only the
standard library)::

    python -I -S _landlock.py --workspace DIR [--network] -- /bin/sh -c ...

It restricts itself with Landlock (a Linux security module unprivileged
processes can use, since Linux 5.13), sets ``PR_SET_NO_NEW_PRIVS`` and
``PR_SET_PDEATHSIG`` (killed when gm dies), then ``execv``'s the command, which
inherits the restrictions for good. What the command may do:

- read and execute anything;
- write, create and remove in the workspace's subdirectories and top-level
  files, except ``.git/`` and ``.gm/`` (Landlock rules only add rights, so a
  right on the workspace itself would reach into them: a command cannot make a
  new top-level entry of the workspace; gm's own file tools can);
- write in ``/tmp``, ``/var/tmp`` and ``/dev/shm`` (shared with the host:
  Landlock has no private mounts) and to devices such as ``/dev/null``. When
  the workspace is inside one of those, a right there would reach into its
  ``.git/``: the command gets the workspace's ``.gm/tmp/`` instead, in
  ``TMPDIR`` (it stays with the project rather than piling up in ``/tmp``);
- no TCP ``connect`` or ``bind`` unless ``--network`` (Landlock ABI 4, Linux
  6.7; UDP is not covered by Landlock);
- no signals to processes outside the sandbox, no abstract UNIX sockets out of
  it (ABI 6, Linux 6.12).

Rights and numbers: the kernel's ``include/uapi/linux/landlock.h`` and
Documentation/userspace-api/landlock.rst. Exit code 125 with a message on
standard error when Landlock cannot be applied (the command does not run).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Iterator, Sequence

__all__ = ["abi_version", "confine", "main", "own_scratch", "plan", "scratch_dirs"]

# Syscall numbers: the same on every architecture (asm-generic/unistd.h, 444-446).
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH = 1
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS = 1, 38
EXIT_CANNOT_CONFINE = 125

# Access rights for files (ABI 1 unless noted).
EXECUTE, WRITE_FILE, READ_FILE = 1 << 0, 1 << 1, 1 << 2
TRUNCATE = 1 << 14  # ABI 3
IOCTL_DEV = 1 << 15  # ABI 5
# Access rights for directories.
READ_DIR, REMOVE_DIR, REMOVE_FILE = 1 << 3, 1 << 4, 1 << 5
MAKE_CHAR, MAKE_DIR, MAKE_REG, MAKE_SOCK = 1 << 6, 1 << 7, 1 << 8, 1 << 9
MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 10, 1 << 11, 1 << 12
REFER = 1 << 13  # ABI 2
# Network (ABI 4) and scopes (ABI 6).
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

_FS_BY_ABI = {
    1: (1 << 13) - 1,
    2: (1 << 14) - 1,
    3: (1 << 15) - 1,
    5: (1 << 16) - 1,
}
_READ = EXECUTE | READ_FILE | READ_DIR
_FILE_WRITE = WRITE_FILE | TRUNCATE | IOCTL_DEV
_MAKE = MAKE_CHAR | MAKE_DIR | MAKE_REG | MAKE_SOCK | MAKE_FIFO | MAKE_BLOCK | MAKE_SYM
_DIR_WRITE = _FILE_WRITE | REMOVE_DIR | REMOVE_FILE | _MAKE | REFER
_FILE_ONLY = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
_PROTECTED = (".git", ".gm")
_SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class LandlockError(OSError):
    """Landlock is not available here, or refused a ruleset."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def abi_version() -> int:
    """The Landlock ABI the running kernel offers (1 or more).

    Raises:
        LandlockError: the kernel has no Landlock or it is turned off (the
            message carries the errno text: ENOSYS, EOPNOTSUPP).
    """
    libc = _libc()
    version = int(libc.syscall(_SYS_CREATE_RULESET, None, 0, _CREATE_RULESET_VERSION))
    if version < 0:
        errno = ctypes.get_errno()
        raise LandlockError(errno, f"Landlock is not available: {os.strerror(errno)}")
    return version


def handled_fs(abi: int) -> int:
    """Every file-system right the kernel's ABI knows (all of them are restricted)."""
    return _FS_BY_ABI[max(k for k in _FS_BY_ABI if k <= abi)]


def _entries(workspace: str) -> Iterator[tuple[str, bool]]:
    with os.scandir(workspace) as found:
        for entry in found:
            if entry.name not in _PROTECTED:
                yield entry.path, entry.is_dir(follow_symlinks=False)


def plan(workspace: str, abi: int) -> list[tuple[str, int]]:
    """The ``(path, allowed rights)`` rules for a command run in ``workspace``.

    Rights a kernel's ABI lacks are dropped (adding one would be EINVAL).
    Symbolic links at the top of the workspace are skipped: a rule follows them,
    and they may point out of it.
    """
    known = handled_fs(abi)
    rules: list[tuple[str, int]] = [("/", _READ)]
    for path, is_dir in _entries(workspace):
        if os.path.islink(path):
            continue
        rules.append((path, (_READ | _DIR_WRITE) if is_dir else (_READ | _FILE_WRITE) & _FILE_ONLY))
    rules += [(p, _READ | _DIR_WRITE) for p in scratch_dirs(workspace)]
    rules.append(("/dev", _READ | _FILE_WRITE))
    return [(path, rights & known) for path, rights in rules]


def _inside(path: str, parent: str) -> bool:
    return os.path.commonpath([path, parent]) == parent


def scratch_dirs(workspace: str) -> list[str]:
    """Where a command may write besides the workspace: the system's temporary
    directories that do not hold the workspace, or else one of its own
    (:func:`own_scratch`, created here)."""
    found = [os.path.realpath(p) for p in _SCRATCH if os.path.isdir(p)]
    mine = [p for p in found if not _inside(workspace, p)]
    if len(mine) == len(found):
        return mine
    own = own_scratch(workspace)
    os.makedirs(own, mode=0o700, exist_ok=True)
    return [*mine, own]


def own_scratch(workspace: str) -> str:
    """The temporary directory a command gets when the workspace is inside a
    system one: ``WORKSPACE/.gm/tmp`` (a rule beneath ``.gm/`` that grants
    nothing on its siblings, such as the journal)."""
    return os.path.join(workspace, ".gm", "tmp")


def confine(workspace: str, *, network: bool) -> int:
    """Restrict this process (and what it executes) to ``workspace``; the ABI used.

    Raises:
        LandlockError: Landlock is missing or a call failed.
    """
    libc = _libc()
    abi = abi_version()
    attr = _RulesetAttr(
        handled_access_fs=handled_fs(abi),
        handled_access_net=0 if network or abi < 4 else NET_BIND_TCP | NET_CONNECT_TCP,
        scoped=SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0,
    )
    size = ctypes.sizeof(attr) if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = int(libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), size, 0))
    if ruleset < 0:
        _fail(libc, "landlock_create_ruleset")
    try:
        for path, rights in plan(workspace, abi):
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # gone since it was listed
            try:
                beneath = _PathBeneathAttr(allowed_access=rights, parent_fd=fd)
                if libc.syscall(
                    _SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(beneath), 0
                ):
                    _fail(libc, f"landlock_add_rule({path})")
            finally:
                os.close(fd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0):
            _fail(libc, "prctl(PR_SET_NO_NEW_PRIVS)")
        if libc.syscall(_SYS_RESTRICT_SELF, ruleset, 0):
            _fail(libc, "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return abi


def _fail(libc: ctypes.CDLL, call: str) -> None:
    del libc
    errno = ctypes.get_errno()
    raise LandlockError(errno, f"{call} failed: {os.strerror(errno)}")


def main(argv: Sequence[str]) -> int:
    """``--workspace DIR [--network] -- COMMAND...``: confine, then exec COMMAND.

    Returns only on failure: 125 (:data:`EXIT_CANNOT_CONFINE`) or 2 (bad usage).
    """
    args = list(argv)
    if "--" not in args or "--workspace" not in args:
        print("usage: _landlock.py --workspace DIR [--network] -- COMMAND...", file=sys.stderr)
        return 2
    split = args.index("--")
    options, command = args[:split], args[split + 1 :]
    workspace = os.path.realpath(options[options.index("--workspace") + 1])
    if not command:
        print("_landlock.py: no command after --", file=sys.stderr)
        return 2
    libc = _libc()
    libc.prctl(
        _PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0
    )  # die with gm, as bwrap --die-with-parent
    try:
        confine(workspace, network="--network" in options)
    except OSError as exc:
        print(f"gm sandbox: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_CANNOT_CONFINE
    own = own_scratch(workspace)
    if own in scratch_dirs(workspace):
        os.environ.update(TMPDIR=own, TMP=own, TEMP=own)
    for number in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores them; exec would keep that
        signal.signal(number, signal.SIG_DFL)
    os.chdir(workspace)
    os.execv(command[0], command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
