"""The vocabulary of joining child runs: join policies and failure policies.

``wait_agents`` takes them as text (``wait_all``, ``wait_any``, ``quorum(2)``;
``ignore``, ``fail_fast``); the kernel judges a group of children by them
(``gm_agent/kernel/_join.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from gm_agent.errors import ToolError

__all__ = ["FAILURE_POLICIES", "FailurePolicy", "JoinPolicy", "parse_policy"]

FailurePolicy = Literal["ignore", "fail_fast"]
FAILURE_POLICIES: tuple[FailurePolicy, ...] = ("ignore", "fail_fast")


@dataclass(frozen=True)
class JoinPolicy:
    """``wait_all``, ``wait_any`` or ``quorum(n)`` (``n`` children must succeed)."""

    kind: Literal["wait_all", "wait_any", "quorum"]
    n: int = 0

    def __str__(self) -> str:
        return f"quorum({self.n})" if self.kind == "quorum" else self.kind


def parse_policy(text: str) -> JoinPolicy:
    """``wait_all``, ``wait_any`` or ``quorum(N)`` (N ≥ 1) as a :class:`JoinPolicy`.

    Raises:
        ToolError: anything else (the model sees what is allowed).
    """
    word = text.strip()
    if word == "wait_all":
        return JoinPolicy("wait_all")
    if word == "wait_any":
        return JoinPolicy("wait_any")
    matched = re.fullmatch(r"quorum\(\s*(\d+)\s*\)", word)
    if matched and int(matched.group(1)) >= 1:
        return JoinPolicy("quorum", int(matched.group(1)))
    raise ToolError(f"policy {text!r}: use wait_all, wait_any or quorum(N) with N >= 1")
