"""Policy: the risk of each tool call, the rules that allow, ask or deny it.

See ``docs/policy.md``. Approvals themselves are events the kernel waits for;
this package only decides.
"""

from __future__ import annotations

from gm_agent.policy._decide import Decision, Risk, decide, network_rule, risk_key, risk_of
from gm_agent.policy._secrets import Redactor
from gm_agent.policy._shell import commands_of

__all__ = [
    "Decision",
    "Redactor",
    "Risk",
    "commands_of",
    "decide",
    "network_rule",
    "risk_key",
    "risk_of",
]
