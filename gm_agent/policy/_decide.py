"""Deciding a tool call: allow, ask or deny, from its risk and the rules.

Each tool has a base risk: ``safe`` (reads), ``elevated`` (file writes, each a
reversible patch; shell commands in an effective sandbox) or ``dangerous``
(shell commands without one). With no rule, safe and elevated calls are
allowed and dangerous ones ask. Rules decide from the arguments, per subject
(each command of a shell line, or a file tool's path): deny wins over ask, ask
over allow, and one command that asks makes the whole line ask.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import JsonValue

from gm_agent.policy._shell import commands_of
from gm_agent.settings import PolicyAction, PolicyRule

__all__ = ["Decision", "Risk", "decide", "network_rule", "risk_key", "risk_of"]

Risk = Literal["safe", "elevated", "dangerous"]

_BASE_RISK: dict[str, Risk] = {
    "read_file": "safe",
    "list_dir": "safe",
    "load_skill": "safe",
    # A child's own calls go through the policy; starting or joining one changes nothing.
    "spawn_agent": "safe",
    "wait_agents": "safe",
    "search": "safe",
    "finish": "safe",
    "write_file": "elevated",
    "edit_file": "elevated",
}
_STRENGTH: dict[PolicyAction, int] = {"allow": 0, "ask": 1, "deny": 2}


def risk_of(tool: str, *, sandboxed: bool) -> Risk:
    """``tool``'s base risk; ``run_shell`` is elevated only inside an effective sandbox.
    A tool gm does not know is dangerous."""
    if tool == "run_shell":
        return "elevated" if sandboxed else "dangerous"
    return _BASE_RISK.get(tool, "dangerous")


def risk_key(tool: str, risk: Risk) -> str:
    """The key an approval ``--always`` remembers when no rule asked, only the risk."""
    return f"{tool}:risk:{risk}"


@dataclass(frozen=True)
class Decision:
    """What to do with one tool call.

    Attributes:
        action: ``allow``, ``ask`` or ``deny``.
        risk: the call's risk.
        rule: the key of the rule that decided (``tool:match``), or of the risk
            (``tool:risk:dangerous``) when no rule did.
        reason: a sentence for the user and the model.
    """

    action: PolicyAction
    risk: Risk
    rule: str
    reason: str


def _subjects(tool: str, args: Mapping[str, JsonValue]) -> list[str] | None:
    if tool == "run_shell":
        return commands_of(str(args.get("command", "")))
    return [str(args.get("path", ""))]


def decide(
    tool: str,
    args: Mapping[str, JsonValue],
    risk: Risk,
    rules: Sequence[PolicyRule],
    approved: Iterable[str] = (),
) -> Decision:
    """Decide a call of ``tool`` with ``args``.

    Args:
        tool: the tool's name.
        args: the call's arguments.
        risk: the call's risk (see :func:`risk_of`).
        rules: the rules in force (gm.toml's, then the task's).
        approved: rule keys approved ``--always`` (for the run or the project):
            a call those rules ask about is allowed. Deny rules stay.
    """
    mine = [r for r in rules if r.tool in (tool, "*")]
    subjects = _subjects(tool, args) if mine else [""]  # no rule: nothing to parse
    if subjects is None:  # a line bashlex cannot parse: never let a rule be dodged
        subjects = [str(args.get("command", ""))]
        strict = [r for r in mine if r.action != "allow"]
        if strict:
            rule = strict[0]
            return Decision(
                "deny" if rule.action == "deny" else "ask",
                risk,
                rule.key,
                f"the command could not be parsed to check rule {rule.key!r}",
            )
    default: PolicyAction = "ask" if risk == "dangerous" else "allow"
    verdicts: list[tuple[PolicyAction, str, str]] = []
    for subject in subjects or [""]:
        matching = [r for r in mine if fnmatch.fnmatchcase(subject, r.match)]
        if matching:
            rule = max(matching, key=lambda r: _STRENGTH[r.action])
            verdicts.append((rule.action, rule.key, subject))
        else:
            verdicts.append((default, risk_key(tool, risk), subject))
    action, key, subject = max(verdicts, key=lambda v: _STRENGTH[v[0]])
    if action == "ask" and key in set(approved):
        return Decision("allow", risk, key, f"{key!r} was approved with --always")
    reason = {
        "deny": f"denied by rule {key!r} ({subject!r})",
        "ask": f"needs approval: {key!r} ({subject!r})"
        if not key.startswith(f"{tool}:risk:")
        else f"needs approval: {tool} is {risk} here",
        "allow": f"allowed by {key!r}",
    }[action]
    return Decision(action, risk, key, reason)


def network_rule(
    tool: str, args: Mapping[str, JsonValue], rules: Sequence[PolicyRule]
) -> str | None:
    """The key of a rule that lets this call reach the network, if one does.

    A ``network = true`` rule that is not ``deny`` and matches one command of a
    shell line grants the network to the whole line (it runs in one sandbox).
    """
    granting = [r for r in rules if r.network and r.action != "deny" and r.tool in (tool, "*")]
    if not granting:
        return None
    for subject in _subjects(tool, args) or []:
        for rule in granting:
            if fnmatch.fnmatchcase(subject, rule.match):
                return rule.key
    return None
