"""Risk, rules and approvals: what proceeds, what asks, what is denied, and how a
person answers from another terminal."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anyio
import pytest

from gm_agent.errors import ConfigError
from gm_agent.journal import Journal
from gm_agent.kernel import answer_approval, run_task
from gm_agent.policy import decide, network_rule, risk_of
from gm_agent.settings import PolicyRule, load_settings
from tests.conftest import gm
from tests.helpers import write_script, write_task

ASK_PUSH = PolicyRule(tool="run_shell", match="git push*", action="ask")


def shell(command: str) -> dict[str, Any]:
    return {"command": command}


@pytest.mark.parametrize(
    ("tool", "args", "sandboxed", "rules", "expected"),
    [
        ("read_file", {"path": "a"}, False, [], "allow"),
        ("write_file", {"path": "a"}, False, [], "allow"),
        ("run_shell", shell("ls"), True, [], "allow"),
        ("run_shell", shell("ls"), False, [], "ask"),  # no sandbox: dangerous
        ("run_shell", shell("git status && git push -f"), True, [ASK_PUSH], "ask"),
        ("run_shell", shell("ls | git push origin; echo ok"), True, [ASK_PUSH], "ask"),
        ("run_shell", shell("echo $(git push)"), True, [ASK_PUSH], "ask"),
        ("run_shell", shell("echo git push"), True, [ASK_PUSH], "allow"),  # parsed, not a substring
        ("run_shell", shell("FOO=1 git push"), True, [ASK_PUSH], "ask"),
        (
            "run_shell",
            shell("cat key > /etc/passwd"),
            True,
            [PolicyRule(tool="run_shell", match="* > /etc/*", action="deny")],
            "deny",
        ),
        ("run_shell", shell("a=$((1+2)); git push"), True, [ASK_PUSH], "ask"),  # unparsable
        (
            "run_shell",
            shell("git push"),
            True,
            [PolicyRule(tool="run_shell", match="git *", action="allow"), ASK_PUSH],
            "ask",
        ),
        (
            "run_shell",
            shell("git push"),
            False,
            [PolicyRule(tool="run_shell", match="git *", action="allow")],
            "allow",  # a rule can allow what the risk alone would ask about
        ),
        (
            "run_shell",
            shell("git push"),
            True,
            [ASK_PUSH, PolicyRule(tool="*", match="git push*", action="deny")],
            "deny",  # deny wins
        ),
        (
            "write_file",
            {"path": "secrets/key.pem"},
            True,
            [PolicyRule(tool="write_file", match="secrets/*", action="deny")],
            "deny",
        ),
    ],
)
def test_a_call_is_decided_by_its_risk_then_by_the_rules(
    tool: str, args: dict[str, Any], sandboxed: bool, rules: list[PolicyRule], expected: str
) -> None:
    decision = decide(tool, args, risk_of(tool, sandboxed=sandboxed), rules)
    assert decision.action == expected, decision


def test_an_approval_always_allows_what_its_rule_asks_but_never_what_a_rule_denies() -> None:
    deny = PolicyRule(tool="run_shell", match="git push --force*", action="deny")
    approved = [ASK_PUSH.key]
    assert decide("run_shell", shell("git push"), "elevated", [ASK_PUSH], approved).action == (
        "allow"
    )
    forced = decide("run_shell", shell("git push --force"), "elevated", [ASK_PUSH, deny], approved)
    assert forced.action == "deny" and forced.rule == deny.key


NET_PIP = PolicyRule(tool="run_shell", match="pip install *", action="allow", network=True)


@pytest.mark.parametrize(
    ("command", "rules", "granted"),
    [
        ("pip install httpx", [NET_PIP], NET_PIP.key),
        ("cd src && pip install -e .", [NET_PIP], NET_PIP.key),  # one command of a chain
        ("pip list", [NET_PIP], None),
        ("pip install httpx", [NET_PIP.model_copy(update={"action": "deny"})], None),
        ("pip install httpx", [NET_PIP.model_copy(update={"network": False})], None),
        ("echo 'pip install x'", [NET_PIP], None),  # parsed: a quoted word is not a command
    ],
)
def test_a_network_rule_grants_the_network_to_the_lines_it_matches(
    command: str, rules: list[PolicyRule], granted: str | None
) -> None:
    assert network_rule("run_shell", shell(command), rules) == granted


def test_a_rule_whose_examples_do_not_hold_is_refused_when_it_loads(workspace: Path) -> None:
    (workspace / "gm.toml").write_text(
        '[[policy.rules]]\ntool = "run_shell"\nmatch = "git push*"\naction = "ask"\n'
        'must_match = ["git push origin"]\nmust_not_match = ["git pushy"]\n'
    )
    with pytest.raises(ConfigError, match=r"rule 'run_shell:git push\*'.*\['git pushy'\]"):
        load_settings(workspace, {})


LEDGER = {"tool_calls": [{"name": "run_shell", "args": {"command": "echo one >> ledger.txt"}}]}


def ask_about_the_ledger(workspace: Path, *moves: dict[str, Any]) -> Path:
    (workspace / "gm.toml").write_text(
        '[[policy.rules]]\ntool = "run_shell"\nmatch = "echo * >> ledger.txt"\naction = "ask"\n'
    )
    write_script(workspace / "moves.yaml", [LEDGER, *moves, {"finish": "done"}])
    return write_task(workspace / "task.md", "Write the ledger.", model="scripted:moves.yaml")


def events(workspace: Path) -> list[dict[str, Any]]:
    result = gm("log", "last", "--json", cwd=workspace)
    return [json.loads(line) for line in result.stdout.splitlines()]


def of_kind(log: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in log if e["kind"] == kind]


def test_an_unattended_run_that_needs_approval_stops_with_exit_3_then_goes_on(
    workspace: Path,
) -> None:
    task = ask_about_the_ledger(workspace)
    stopped = gm("run", str(task), cwd=workspace)
    assert stopped.returncode == 3, stopped.stderr
    assert "needs approval of run_shell" in stopped.stderr and "gm approve" in stopped.stderr
    assert "status   waiting" in gm("status", "last", cwd=workspace).stdout
    assert not (workspace / "ledger.txt").exists()
    (requested,) = of_kind(events(workspace), "approval.requested")
    assert requested["rule"] == "run_shell:echo * >> ledger.txt"
    approved = gm("approve", "last", cwd=workspace)
    assert approved.returncode == 0, approved.stderr
    assert "continue it with `gm resume" in approved.stdout
    resumed = gm("resume", "last", cwd=workspace)
    assert resumed.returncode == 0, resumed.stderr
    assert (workspace / "ledger.txt").read_text() == "one\n"
    log = events(workspace)
    waiting = [d for d in of_kind(log, "run.status_changed") if d["to"] == "waiting"]
    assert waiting == [{"from": "running", "to": "waiting", "reason": "approval"}]
    (called,) = [c for c in of_kind(log, "tool.called") if c["name"] == "run_shell"]
    assert (called["decision"], called["rule"]) == ("approved", requested["rule"])
    assert gm("replay", "last", "--recorded", "-q", cwd=workspace).returncode == 0


def test_a_denial_reaches_the_model_as_the_calls_result_with_its_reason(workspace: Path) -> None:
    task = ask_about_the_ledger(workspace)
    assert gm("run", str(task), cwd=workspace).returncode == 3
    denied = gm("deny", "last", "--reason", "not the ledger", cwd=workspace)
    assert denied.returncode == 0, denied.stderr
    assert gm("resume", "last", cwd=workspace).returncode == 0
    log = events(workspace)
    (result,) = [r for r in of_kind(log, "tool.returned") if r["name"] == "run_shell"]
    assert not result["ok"]
    assert result["output"] == "not run: the user denied it: not the ledger"
    assert not (workspace / "ledger.txt").exists()


def test_yes_approves_and_says_so_in_the_journal(workspace: Path) -> None:
    task = ask_about_the_ledger(workspace)
    result = gm("run", str(task), "--yes", cwd=workspace)
    assert result.returncode == 0, result.stderr
    (granted,) = of_kind(events(workspace), "approval.granted")
    assert granted["by"] == "--yes"
    assert (workspace / "ledger.txt").read_text() == "one\n"


def test_a_deny_rule_refuses_even_with_yes_and_the_model_hears_why(workspace: Path) -> None:
    write_script(workspace / "moves.yaml", [LEDGER, {"finish": "done"}])
    task = write_task(
        workspace / "task.md",
        "Write the ledger.",
        model="scripted:moves.yaml",
        policy={"rules": [{"tool": "run_shell", "match": "echo*", "action": "deny"}]},
    )
    assert gm("run", str(task), "--yes", cwd=workspace).returncode == 0
    log = events(workspace)
    (called,) = [c for c in of_kind(log, "tool.called") if c["name"] == "run_shell"]
    assert (called["decision"], called["rule"]) == ("deny", "run_shell:echo*")
    (result,) = [r for r in of_kind(log, "tool.returned") if r["name"] == "run_shell"]
    assert result["output"].startswith("not run: denied by rule 'run_shell:echo*'")
    assert not of_kind(log, "approval.requested")


def test_approve_always_for_the_run_and_for_the_project(workspace: Path) -> None:
    task = ask_about_the_ledger(workspace, LEDGER)  # two calls the same rule asks about
    assert gm("run", str(task), cwd=workspace).returncode == 3
    assert gm("approve", "last", "--always", cwd=workspace).returncode == 0
    assert gm("resume", "last", cwd=workspace).returncode == 0  # the second call is not asked
    assert len(of_kind(events(workspace), "approval.requested")) == 1
    assert (workspace / "ledger.txt").read_text() == "one\none\n"
    assert gm("run", str(task), cwd=workspace).returncode == 3  # a new run asks again
    assert gm("approve", "last", "--always", "project", cwd=workspace).returncode == 0
    assert "run_shell:echo * >> ledger.txt" in (workspace / ".gm" / "policy.toml").read_text()
    assert gm("resume", "last", cwd=workspace).returncode == 0
    assert gm("run", str(task), cwd=workspace).returncode == 0  # the project remembers
    assert not of_kind(events(workspace), "approval.requested")


def test_approving_a_run_that_waits_for_nothing_is_a_clear_error(workspace: Path) -> None:
    write_script(workspace / "moves.yaml", [{"finish": "done"}])
    task = write_task(workspace / "task.md", "Nothing.", model="scripted:moves.yaml")
    assert gm("run", str(task), cwd=workspace).returncode == 0
    result = gm("approve", "last", cwd=workspace)
    assert result.returncode == 2
    assert "is not waiting for an approval of any call" in result.stderr


@pytest.mark.anyio
async def test_an_attended_run_waits_and_goes_on_when_another_process_answers(
    workspace: Path,
) -> None:
    task = ask_about_the_ledger(workspace)
    environ = dict(os.environ)
    outcome = None

    async def execute() -> None:
        nonlocal outcome
        outcome = await run_task(task, workspace=workspace, environ=environ, approvals="wait")

    async with anyio.create_task_group() as tg:
        tg.start_soon(execute)
        with anyio.fail_after(30):
            while not await _waiting(workspace):  # noqa: ASYNC110 - another process's state
                await anyio.sleep(0.05)
        answered = await answer_approval(workspace, "last", environ, grant=True)
        assert answered.live  # the waiting kernel holds the run: it goes on by itself
    assert outcome is not None and outcome.status == "succeeded"
    assert (workspace / "ledger.txt").read_text() == "one\n"


async def _waiting(workspace: Path) -> bool:
    path = workspace / ".gm" / "journal.db"
    if not path.exists():
        return False
    async with await Journal.open(path, read_only=True) as journal:
        runs = await journal.list_runs()
    return bool(runs) and runs[0].status == "waiting"
