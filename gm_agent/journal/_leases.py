"""Leases: which process may execute a run.

A lease is a row's ``lease_owner`` and ``lease_expires_at`` in the ``runs``
projection. It is not an event (heartbeats would flood the journal): taking,
renewing and releasing it are conditional updates in ``BEGIN IMMEDIATE``
transactions, so two processes can never both believe they hold it.

An owner is ``host/pidns:pid:nonce``. A lease is free when it has no owner,
when it expired, or when its owner is a process in this host's pid namespace
that no longer exists (found with ``kill(pid, 0)``), so a crashed holder is
replaced at once rather than after its lease runs out; a holder in another pid
namespace (a container) is trusted until its lease expires.
"""

from __future__ import annotations

import os
import socket

__all__ = ["DEFAULT_LEASE_S", "new_owner", "owner_alive"]

DEFAULT_LEASE_S = 10.0
"""Seconds a lease lasts unless renewed; the kernel renews it every third of that."""


def _host() -> str:
    """This host as far as pids go: its name and its pid namespace (containers share names)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid").removeprefix("pid:[").rstrip("]")
    except OSError:
        namespace = "?"
    return f"{socket.gethostname()}/{namespace}"


def new_owner(nonce: str) -> str:
    """An owner id for this process: ``host/pidns:pid:nonce``."""
    return f"{_host()}:{os.getpid()}:{nonce}"


def owner_alive(owner: str) -> bool:
    """Whether ``owner``'s process may still be running.

    Only a process on this host can be checked; one elsewhere is presumed alive
    until its lease expires.
    """
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != _host() or not pid_text.isdigit():
        return True
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process its parent has not reaped yet is a zombie: dead
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True
