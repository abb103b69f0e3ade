"""What the kernel does with a tool call, given the policy and the run's approvals.

Pure: :func:`verdict` reads the folded state and the rules; the loop journals
the outcome (``approval.requested`` and a wait, or ``tool.called`` with the
decision) and, for an unattended run, stops waiting (exit code 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gm_agent.events import ToolCallData
from gm_agent.kernel.state import RunState
from gm_agent.policy import Risk, decide, risk_of
from gm_agent.settings import PolicyRule, PolicySettings

__all__ = ["APPROVAL_POLL_S", "ApprovalMode", "Verdict", "rules_in_force", "verdict"]

ApprovalMode = Literal["wait", "stop", "yes"]
"""What a run does when a call needs approval: ``wait`` for `gm approve`/`gm deny`
from another terminal, ``stop`` (unattended: the run stays ``waiting``, exit code
3), or ``yes`` (approve it, journaling that ``--yes`` did; deny rules still deny)."""

APPROVAL_POLL_S = 0.1
"""How often a waiting run looks for an answer, in seconds (ARCHITECTURE.md: 100 ms)."""


@dataclass(frozen=True)
class Verdict:
    """``kind``: ``allow`` or ``deny`` (by the policy), ``approved`` or ``denied`` (by a
    person's answer), or ``ask`` (an approval is needed and not given yet)."""

    kind: Literal["allow", "deny", "approved", "denied", "ask"]
    risk: Risk | None
    rule: str | None
    reason: str


def rules_in_force(policy: PolicySettings, state: RunState) -> list[PolicyRule]:
    """gm.toml's rules, then the task's (recorded with the run)."""
    return [*policy.rules, *(PolicyRule.model_validate(r) for r in state.rules)]


def verdict(
    state: RunState,
    call: ToolCallData,
    *,
    known_tools: Sequence[str],
    sandboxed: bool,
    policy: PolicySettings,
) -> Verdict:
    """Decide ``call``: an answer already given wins, then the policy.

    A call the kernel will refuse anyway (an unknown tool, arguments that are not
    JSON) is allowed here, so the model sees the real error.
    """
    approval = state.approval_for(call.call_id)
    if approval is not None and approval.answer == "granted":
        return Verdict("approved", _risk(approval.risk), approval.rule, "approved")
    if approval is not None and approval.answer == "denied":
        why = f": {approval.answer_reason}" if approval.answer_reason else ""
        return Verdict("denied", _risk(approval.risk), approval.rule, f"the user denied it{why}")
    if call.args_error is not None or call.name not in known_tools:
        return Verdict("allow", None, None, "")
    risk = risk_of(call.name, sandboxed=sandboxed)
    approved = (*policy.approved, *state.approved_rules)
    decision = decide(call.name, call.args, risk, rules_in_force(policy, state), approved)
    return Verdict(decision.action, risk, decision.rule, decision.reason)


def _risk(value: str) -> Risk:
    return "safe" if value == "safe" else "elevated" if value == "elevated" else "dangerous"
