"""``gm approve`` and ``gm deny``: answer a run's pending approval from any process.

The answer is an event (``approval.granted`` or ``approval.denied``, source
``user``) appended to the run; no lease is needed, since only the run's kernel
acts on it. A kernel waiting in another terminal picks it up within
:data:`~gm_agent.kernel._approvals.APPROVAL_POLL_S`; a run that stopped
waiting (unattended) goes on with ``gm resume``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anyio

from gm_agent.clock import Clock, SystemClock
from gm_agent.errors import UserError
from gm_agent.events import ApprovalDenied, ApprovalGranted, new_event
from gm_agent.kernel._checkpoint import load_state
from gm_agent.kernel._run import open_existing
from gm_agent.kernel.state import ApprovalView
from gm_agent.settings import load_settings, remember_approval

__all__ = ["Answered", "answer_approval"]


@dataclass(frozen=True)
class Answered:
    """What was answered: the run, the call, and whether a live process will go on."""

    run_id: str
    approval: ApprovalView
    live: bool


async def answer_approval(
    workspace: Path,
    run_ref: str,
    environ: Mapping[str, str],
    *,
    grant: bool,
    call_id: str | None = None,
    always: Literal["run", "project"] | None = None,
    reason: str | None = None,
    clock: Clock | None = None,
) -> Answered:
    """Approve (``grant``) or deny run ``run_ref``'s pending call.

    Args:
        call_id: the call to answer; default the one the run waits for.
        always: with ``grant``, remember the approval for its rule in the ``run``
            (an event) or the ``project`` (``.gm/policy.toml``).
        reason: with a denial, what the model is told.

    Raises:
        RunNotFound: no such run.
        UserError: the run waits for no approval (or not for ``call_id``).
    """
    clock = clock or SystemClock()
    workspace = Path(await anyio.Path(workspace).resolve())
    settings = load_settings(workspace, environ)
    async with await open_existing(settings, clock) as journal:
        run_id = await journal.resolve_run(run_ref)
        state, _ = await load_state(journal, run_id)
        pending = state.pending_approval()
        if pending is None or (call_id is not None and pending.call_id != call_id):
            what = f"call {call_id!r}" if call_id else "any call"
            raise UserError(f"run {run_id} is not waiting for an approval of {what}")
        if grant and always == "project":
            remember_approval(workspace, pending.rule)
        data = (
            ApprovalGranted(call_id=pending.call_id, always=always)
            if grant
            else ApprovalDenied(call_id=pending.call_id, reason=reason)
        )
        await journal.append([new_event(clock, run_id, "user", data)])
        row = await journal.get_run(run_id)
    return Answered(run_id, pending, live=row.lease_owner is not None and not row.orphaned)
