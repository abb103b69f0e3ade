"""Join policies, as a table: what each policy and failure policy makes of a group
of children (gm_agent/kernel/_join.py; docs/agents.md)."""

from __future__ import annotations

import pytest

from gm_agent.errors import ToolError
from gm_agent.kernel._join import judge
from gm_agent.tools import JoinPolicy, parse_policy

ALL, ANY, QUORUM_2 = JoinPolicy("wait_all"), JoinPolicy("wait_any"), JoinPolicy("quorum", 2)


def group(*statuses: str) -> dict[str, str]:
    return {f"child-{i}": status for i, status in enumerate(statuses)}


@pytest.mark.parametrize(
    ("text", "policy"),
    [("wait_all", ALL), ("wait_any", ANY), ("quorum(2)", QUORUM_2), (" quorum( 2 ) ", QUORUM_2)],
)
def test_policies_are_read_from_their_names(text: str, policy: JoinPolicy) -> None:
    assert parse_policy(text) == policy
    assert str(policy) == text.replace(" ", "")


@pytest.mark.parametrize("text", ["all", "quorum(0)", "quorum(two)", "wait_all()", ""])
def test_anything_else_is_an_error_the_model_sees(text: str) -> None:
    with pytest.raises(ToolError, match="use wait_all, wait_any or quorum"):
        parse_policy(text)


# (statuses, policy, on_failure) -> (done, outcome, cancelled children)
CASES = [
    # wait_all: over when every child has ended; failures are reported, not fatal
    (("succeeded", "running", "failed"), ALL, "ignore", (False, None, ())),
    (("succeeded", "succeeded", "failed"), ALL, "ignore", (True, "satisfied", ())),
    (("succeeded", "waiting", "failed"), ALL, "ignore", (False, None, ())),  # a person may answer
    # wait_any: the first success ends it and cancels the rest
    (
        ("running", "succeeded", "running"),
        ANY,
        "ignore",
        (True, "satisfied", ("child-0", "child-2")),
    ),
    (("failed", "running", "running"), ANY, "ignore", (False, None, ())),
    (("failed", "cancelled", "failed"), ANY, "ignore", (True, "failed", ())),
    # quorum(2): two successes; failed as soon as two can no longer succeed
    (("succeeded", "running", "succeeded"), QUORUM_2, "ignore", (True, "satisfied", ("child-1",))),
    (("succeeded", "failed", "running"), QUORUM_2, "ignore", (False, None, ())),
    (("failed", "failed", "running"), QUORUM_2, "ignore", (True, "failed", ("child-2",))),
    # fail_fast: the first failure ends the wait and cancels whoever still runs
    (("succeeded", "failed", "running"), ALL, "fail_fast", (True, "failed", ("child-2",))),
    (
        ("running", "cancelled", "paused"),
        ANY,
        "fail_fast",
        (True, "failed", ("child-0", "child-2")),
    ),
    (("succeeded", "succeeded", "succeeded"), ALL, "fail_fast", (True, "satisfied", ())),
]


@pytest.mark.parametrize(("statuses", "policy", "on_failure", "expected"), CASES)
def test_each_policy_gives_its_documented_result(
    statuses: tuple[str, ...],
    policy: JoinPolicy,
    on_failure: str,
    expected: tuple[bool, str | None, tuple[str, ...]],
) -> None:
    verdict = judge(group(*statuses), policy, on_failure)  # type: ignore[arg-type]
    assert (verdict.done, verdict.outcome, verdict.cancel) == expected
    assert bool(verdict.reason) == verdict.done


def test_an_empty_group_is_joined_at_once_and_a_quorum_beyond_it_fails() -> None:
    assert judge({}, ALL, "ignore").outcome == "satisfied"
    assert judge(group("succeeded"), JoinPolicy("quorum", 3), "ignore").outcome == "failed"
