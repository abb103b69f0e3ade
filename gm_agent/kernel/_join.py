"""Join policies: when a group of child runs is done, and with what result.

A parent that spawned child runs (``spawn_agent``) waits for a *group* of them
with ``wait_agents``. The join policy says when the wait is over:

- ``wait_all``: every child has ended (whether it succeeded is reported per child);
- ``wait_any``: one child has succeeded (or every child has ended without one);
- ``quorum(n)``: ``n`` children have succeeded (or so many failed that ``n``
  can no longer succeed).

The failure policy says what a failed child does to the rest: ``ignore`` (it
is reported, the others go on) or ``fail_fast`` (the join ends at once as
failed and the children still running are cancelled). A join that is over
while children still run (``wait_any``, ``quorum``, ``fail_fast``, a timeout)
cancels them: a parent never leaves children it no longer waits for.

This module is pure: :func:`judge` folds the children's statuses, the kernel
acts on the verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from gm_agent.tools import FailurePolicy, JoinPolicy

__all__ = ["JoinVerdict", "judge"]

_ENDED = frozenset({"succeeded", "failed", "cancelled"})
"""A child's statuses that are final (``waiting`` and ``paused`` are not: a
person may answer it and it goes on)."""


@dataclass(frozen=True)
class JoinVerdict:
    """Whether the wait is over, and how it ended.

    Attributes:
        done: the wait is over.
        outcome: ``satisfied`` (the policy is met), ``failed`` (it cannot be
            met, or a child failed under ``fail_fast``); ``None`` while not done.
        cancel: the children to cancel now (they still run and are no longer
            waited for), by run id.
        reason: one line for the model and the journal.
    """

    done: bool
    outcome: Literal["satisfied", "failed"] | None = None
    cancel: tuple[str, ...] = ()
    reason: str = ""


def judge(
    statuses: Mapping[str, str], policy: JoinPolicy, on_failure: FailurePolicy
) -> JoinVerdict:
    """The join's verdict from each child's run status (``{run_id: status}``).

    Args:
        statuses: every child of the group, by run id, with its run status
            (``created``, ``running``, ``waiting``, ``paused``, ``succeeded``,
            ``failed``, ``cancelled``).
        policy: the join policy.
        on_failure: ``ignore`` or ``fail_fast``.

    Returns:
        Not done while the policy can still be met and is not yet; else done,
        with the children still running to cancel.
    """
    total = len(statuses)
    ok = [run for run, status in statuses.items() if status == "succeeded"]
    bad = [run for run, status in statuses.items() if status in _ENDED and status != "succeeded"]
    live = tuple(run for run, status in statuses.items() if status not in _ENDED)
    if bad and on_failure == "fail_fast":
        return JoinVerdict(True, "failed", live, f"child {bad[0]} did not succeed (fail_fast)")
    need = {"wait_all": total, "wait_any": min(1, total), "quorum": policy.n}[policy.kind]
    if policy.kind == "wait_all":
        if live:
            return JoinVerdict(False)
        reason = f"all {total} ended: {len(ok)} succeeded, {len(bad)} did not"
        return JoinVerdict(True, "satisfied", (), reason)
    if len(ok) >= need:
        return JoinVerdict(True, "satisfied", live, f"{len(ok)} of {total} succeeded ({policy})")
    if len(ok) + len(live) < need:
        reason = f"only {len(ok) + len(live)} of {total} can still succeed; {policy} needs {need}"
        return JoinVerdict(True, "failed", live, reason)
    return JoinVerdict(False)
