"""Sub-agents: a run spawns child runs in the same journal, joins them by a policy,
and takes them down with it (issue 11; docs/agents.md).

Every child is scripted (``scripted:FILE``), so each one's moves are exact: a
child that finishes, one whose script runs out (it fails), and one that waits
for an approval no one gives (the task's policy asks before ``echo wait-here``),
so it is still going when a join policy or a cancel reaches it. A waiting child
holds nothing; a command that blocks would hold the workspace's writer lock,
which every command takes in turn."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import gm, gm_process
from tests.helpers import (
    await_condition,
    events,
    ledger,
    of_kind,
    runs,
    stopped,
    write_script,
    write_task,
)

pytestmark = pytest.mark.sandbox

BLOCK = "while [ ! -f go ]; do sleep 0.1; done"
ASK = {"rules": [{"tool": "run_shell", "match": "*wait-here*", "action": "ask"}]}
"""The task's policy: the command ``echo wait-here`` waits for ``gm approve``."""
UNATTENDED = ("--wait-for-approval",)
"""How the parents run: a call that asks waits for ``gm approve`` (none comes)."""


def child(workspace: Path, name: str, *moves: dict[str, Any]) -> str:
    """A child's script; the model name to give spawn_agent."""
    write_script(workspace / f"{name}.yaml", list(moves))
    return f"scripted:{name}.yaml"


def shell(command: str) -> dict[str, Any]:
    return {"tool_calls": [{"name": "run_shell", "args": {"command": command}}]}


def ok(workspace: Path, name: str) -> str:
    """A child that writes NAME.txt, notes itself in the ledger, and finishes."""
    return child(
        workspace,
        name,
        {"tool_calls": [{"name": "write_file", "args": {"path": f"{name}.txt", "content": name}}]},
        shell(f"echo {name} >> ledger"),
        {"finish": f"{name} done"},
    )


def failing(workspace: Path, name: str) -> str:
    """A child whose script runs out after one command: its run fails."""
    return child(workspace, name, shell(f"echo {name} >> ledger"))


def blocked(workspace: Path, name: str) -> str:
    """A child that notes itself in the ledger, then waits for an approval."""
    return child(
        workspace,
        name,
        shell(f"echo {name} >> ledger"),
        shell("echo wait-here"),
        {"finish": f"{name} approved"},
    )


def spawn(model: str, group: str = "g", **more: object) -> dict[str, Any]:
    args = {"task": f"work as {model}", "model": model, "group": group, "max_steps": 6, **more}
    return {"name": "spawn_agent", "args": args}


def parent(workspace: Path, children: list[str], **wait: object) -> Path:
    """A parent that spawns ``children`` in one move, waits for group g, and finishes."""
    write_script(
        workspace / "parent.yaml",
        [
            {"tool_calls": [spawn(model) for model in children]},
            {"tool_calls": [{"name": "wait_agents", "args": {"group": "g", **wait}}]},
            {"finish": "joined"},
        ],
    )
    return write_task(
        workspace / "task.md", "Split the work.", model="scripted:parent.yaml", policy=ASK
    )


def parent_id(workspace: Path) -> str:
    return next(r["run_id"] for r in runs(workspace) if r["parent_run"] is None)


def children_of(workspace: Path, run_id: str) -> dict[str, str]:
    """Each child run of ``run_id`` and its status."""
    return {r["run_id"]: r["status"] for r in runs(workspace) if r["parent_run"] == run_id}


def joined(workspace: Path, run_id: str) -> dict[str, Any]:
    (found,) = of_kind(workspace, run_id, "agents.joined")
    return found


def by_model(workspace: Path, found: dict[str, Any]) -> dict[str, str]:
    """The joined children's statuses by their script's name."""
    models = {r["run_id"]: Path(r["model"]).stem for r in runs(workspace)}
    return {models[c["run_id"]]: c["status"] for c in found["children"]}


# -- join and failure policies ---------------------------------------------------------


def test_wait_all_collects_every_child_with_its_status_summary_and_files(
    workspace: Path,
) -> None:
    parent(workspace, [ok(workspace, "a"), ok(workspace, "b"), failing(workspace, "c")])

    ran = gm("run", "task.md", *UNATTENDED, cwd=workspace)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    run_id = parent_id(workspace)
    found = joined(workspace, run_id)
    assert (found["outcome"], found["policy"], found["on_failure"]) == (
        "satisfied",
        "wait_all",
        "ignore",
    )
    assert by_model(workspace, found) == {"a": "succeeded", "b": "succeeded", "c": "failed"}
    changed = {f for c in found["children"] for f in c["files"]}
    assert changed == {"a.txt", "b.txt", "ledger"}
    (returned,) = [
        r for r in of_kind(workspace, run_id, "tool.returned") if r["name"] == "wait_agents"
    ]
    assert (
        returned["ok"] and "a done" in returned["output"] and "changed: a.txt" in returned["output"]
    )
    assert (workspace / "a.txt").read_text() == "a" and (workspace / "b.txt").read_text() == "b"
    assert sorted(ledger(workspace)) == ["a", "b", "c"]


def test_wait_any_takes_the_first_success_and_cancels_the_rest(workspace: Path) -> None:
    parent(
        workspace,
        [ok(workspace, "a"), blocked(workspace, "b"), blocked(workspace, "c")],
        policy="wait_any",
    )

    ran = gm("run", "task.md", *UNATTENDED, cwd=workspace)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    found = joined(workspace, parent_id(workspace))
    assert found["outcome"] == "satisfied"
    assert by_model(workspace, found) == {"a": "succeeded", "b": "cancelled", "c": "cancelled"}


def test_a_quorum_is_met_by_two_successes(workspace: Path) -> None:
    parent(
        workspace,
        [ok(workspace, "a"), ok(workspace, "b"), blocked(workspace, "c")],
        policy="quorum(2)",
    )

    ran = gm("run", "task.md", *UNATTENDED, cwd=workspace)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    found = joined(workspace, parent_id(workspace))
    assert (found["outcome"], found["policy"]) == ("satisfied", "quorum(2)")
    assert by_model(workspace, found) == {"a": "succeeded", "b": "succeeded", "c": "cancelled"}


def test_fail_fast_ends_the_wait_at_the_first_failure_and_cancels_the_others(
    workspace: Path,
) -> None:
    parent(
        workspace,
        [blocked(workspace, "a"), blocked(workspace, "b"), failing(workspace, "c")],
        on_failure="fail_fast",
    )

    ran = gm("run", "task.md", *UNATTENDED, cwd=workspace)

    assert ran.returncode == 0, ran.stdout + ran.stderr  # the model is told, and decides
    run_id = parent_id(workspace)
    found = joined(workspace, run_id)
    assert found["outcome"] == "failed" and "fail_fast" in found["reason"]
    assert by_model(workspace, found) == {"a": "cancelled", "b": "cancelled", "c": "failed"}
    (returned,) = [
        r for r in of_kind(workspace, run_id, "tool.returned") if r["name"] == "wait_agents"
    ]
    assert not returned["ok"]


def test_a_join_that_times_out_cancels_what_still_runs(workspace: Path) -> None:
    parent(workspace, [blocked(workspace, "b")], timeout_s=1)  # b waits for no one

    ran = gm("run", "task.md", *UNATTENDED, cwd=workspace)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    found = joined(workspace, parent_id(workspace))
    assert found["outcome"] == "timed_out" and "timed out after 1 s" in found["reason"]
    assert by_model(workspace, found) == {"b": "cancelled"}


# -- guardrails and budgets ------------------------------------------------------------


def test_a_child_only_narrows_tools_and_its_steps_come_from_the_parents(
    workspace: Path,
) -> None:
    write_script(
        workspace / "parent.yaml",
        [
            {"tool_calls": [spawn("scripted:x.yaml", tools=["read_file", "write_file"])]},
            {"tool_calls": [spawn("scripted:x.yaml", max_steps=50)]},
            {"tool_calls": [spawn(child(workspace, "r", {"finish": "read"}), read_only=True)]},
            {"tool_calls": [{"name": "wait_agents", "args": {}}]},
            {"finish": "done"},
        ],
    )
    write_task(
        workspace / "task.md",
        "Delegate.",
        model="scripted:parent.yaml",
        max_steps=12,
        tools=["read_file", "list_dir", "run_shell", "spawn_agent", "wait_agents"],
    )

    ran = gm("run", "task.md", *UNATTENDED, cwd=workspace)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    run_id = parent_id(workspace)
    replies = [r for r in of_kind(workspace, run_id, "tool.returned") if r["name"] == "spawn_agent"]
    assert not replies[0]["ok"] and "not write_file" in replies[0]["output"]
    assert not replies[1]["ok"] and "more than the" in replies[1]["output"]
    assert replies[2]["ok"]
    (only,) = children_of(workspace, run_id)
    created = of_kind(workspace, only, "run.created")[0]
    assert created["tools"] == ["read_file", "list_dir"]  # read_only: no shell, no spawning
    assert created["parent_run"] == run_id and created["max_steps"] == 6


# -- stops reach every descendant ------------------------------------------------------


def test_cancelling_the_parent_cancels_its_running_children_and_kills_their_commands(
    workspace: Path,
) -> None:
    running = child(workspace, "a", shell(f"echo a >> ledger; {BLOCK}"), {"finish": "late"})
    asking = child(workspace, "b", shell("echo wait-here"), {"finish": "late"})  # no lock
    parent(workspace, [running, asking])
    process = gm_process("run", "task.md", *UNATTENDED, cwd=workspace)

    def both_going() -> bool:
        statuses = {r["status"] for r in runs(workspace) if r["parent_run"]}
        return ledger(workspace) == ["a"] and statuses == {"running", "waiting"}

    try:
        await_condition("a's command and b's question", both_going, process)
        cancelled = gm("cancel", parent_id(workspace), "--yes", cwd=workspace)
        process.communicate(timeout=60)
    finally:
        stopped(process)
        (workspace / "go").touch()
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    assert process.returncode == 1
    run_id = parent_id(workspace)
    assert [r["status"] for r in runs(workspace) if r["run_id"] == run_id] == ["cancelled"]
    statuses = {Path(r["model"]).stem: r["status"] for r in runs(workspace) if r["parent_run"]}
    assert statuses == {"a": "cancelled", "b": "cancelled"}
    (a_id,) = [r["run_id"] for r in runs(workspace) if r["model"].endswith("/a.yaml")]
    assert of_kind(workspace, a_id, "job.cancelled") != []  # its command was killed
    alive = subprocess.run(["pgrep", "-f", BLOCK], capture_output=True, check=False)
    assert alive.returncode == 1, alive.stdout  # and nothing of it is left running


def test_interrupting_the_parent_pauses_its_children_and_resume_goes_on_with_them(
    workspace: Path,
) -> None:
    running = child(workspace, "a", shell(f"echo a >> ledger; {BLOCK}"), {"finish": "a done"})
    parent(workspace, [running])
    process = gm_process("run", "task.md", *UNATTENDED, cwd=workspace)
    try:
        await_condition("a's command", lambda: ledger(workspace) == ["a"], process)
        run_id = parent_id(workspace)
        (a_id,) = children_of(workspace, run_id)
        interrupt = gm_process("interrupt", run_id, cwd=workspace)
        try:
            await_condition(
                "the interrupt reaching the child",
                lambda: of_kind(workspace, a_id, "run.interrupt") != [],
            )
            (workspace / "go").touch()  # a command is let finish; then the runs pause
            process.communicate(timeout=60)
            interrupt.communicate(timeout=60)
        finally:
            stopped(interrupt)
    finally:
        stopped(process)
        (workspace / "go").touch()
    assert (process.returncode, interrupt.returncode) == (130, 0)
    assert children_of(workspace, run_id) == {a_id: "paused"}
    assert of_kind(workspace, a_id, "job.cancelled") == []  # its command finished

    resumed = gm("resume", run_id, *UNATTENDED, cwd=workspace)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert children_of(workspace, run_id) == {a_id: "succeeded"}
    assert joined(workspace, run_id)["outcome"] == "satisfied"
    assert ledger(workspace) == ["a"]


def test_after_sigkill_during_a_fan_out_resume_starts_no_child_twice_and_reruns_none(
    workspace: Path,
) -> None:
    parent(workspace, [ok(workspace, "a"), blocked(workspace, "b"), blocked(workspace, "c")])
    process = gm_process("run", "task.md", *UNATTENDED, cwd=workspace)
    try:
        await_condition(
            "the fan-out", lambda: sorted(ledger(workspace)) == ["a", "b", "c"], process
        )
        run_id = parent_id(workspace)

        def settled() -> bool:  # a ended; b and c wait for their approvals
            statuses = sorted(children_of(workspace, run_id).values())
            return statuses == ["succeeded", "waiting", "waiting"]

        await_condition("a's end, b and c waiting", settled, process)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
    finally:
        stopped(process)
    before = children_of(workspace, run_id)
    finished_a = next(c for c, s in before.items() if s == "succeeded")
    a_events = len(events(workspace, finished_a))

    resumed = gm("resume", run_id, "--yes", cwd=workspace)  # --yes: their approvals too

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = children_of(workspace, run_id)
    assert set(after) == set(before)  # no child started twice
    assert set(after.values()) == {"succeeded"}  # b and c went on where they stopped
    assert len(events(workspace, finished_a)) == a_events  # the finished one is not touched
    assert sorted(ledger(workspace)) == ["a", "b", "c"]  # no command ran again
    assert joined(workspace, run_id)["outcome"] == "satisfied"


# -- file changes go through the one writer --------------------------------------------


def test_children_changing_different_files_both_land_and_gm_runs_shows_the_tree(
    workspace: Path,
) -> None:
    parent(workspace, [ok(workspace, "a"), ok(workspace, "b")])

    assert gm("run", "task.md", *UNATTENDED, cwd=workspace).returncode == 0

    assert (workspace / "a.txt").read_text() == "a" and (workspace / "b.txt").read_text() == "b"
    listed = gm("runs", cwd=workspace).stdout.splitlines()
    run_id = parent_id(workspace)
    at = next(i for i, line in enumerate(listed) if line.startswith(run_id))
    assert all(line.startswith("└ ") or line.startswith("├ ") for line in listed[at + 1 : at + 3])
    undone = gm("undo", run_id, cwd=workspace)  # the parent's undo takes its children's too
    assert undone.returncode == 0, undone.stderr
    assert not (workspace / "a.txt").exists() and not (workspace / "b.txt").exists()


def test_two_children_changing_one_file_the_second_gets_a_conflict_and_resolves_it(
    workspace: Path,
) -> None:
    (workspace / "shared.txt").write_text("start\n")
    (workspace / "gate.txt").write_text("open\n")
    first = child(
        workspace,
        "a",
        shell(f"echo a >> ledger; {BLOCK}; echo A > shared.txt"),  # under the writer lock
        {"finish": "wrote A"},
    )
    write = {"name": "write_file", "args": {"path": "shared.txt", "content": "start\nB\n"}}
    second = child(
        workspace,
        "b",
        {"tool_calls": [{"name": "read_file", "args": {"path": "gate.txt"}}]},  # asks first
        {"tool_calls": [write]},  # made from what it read: the lock is a's
        {"tool_calls": [{"name": "read_file", "args": {"path": "shared.txt"}}]},
        {
            "tool_calls": [
                {"name": "write_file", "args": {"path": "shared.txt", "content": "A\nB\n"}}
            ]
        },
        {"finish": "wrote B after A"},
    )
    parent(workspace, [first, second])
    policy = {"rules": [{"tool": "read_file", "match": "gate.txt", "action": "ask"}]}
    write_task(workspace / "task.md", "Both.", model="scripted:parent.yaml", policy=policy)
    process = gm_process("run", "task.md", *UNATTENDED, cwd=workspace)

    def child_row(name: str) -> dict[str, Any]:
        return next(r for r in runs(workspace) if r["model"].endswith(f"/{name}.yaml"))

    try:
        await_condition(
            "a holding the lock, b asking",
            lambda: ledger(workspace) == ["a"] and child_row("b")["status"] == "waiting",
            process,
        )
        b_id = child_row("b")["run_id"]
        assert gm("approve", b_id, cwd=workspace).returncode == 0
        await_condition(
            "b queued for the lock",
            lambda: (child_row("b")["status_reason"] or "").startswith("writer lock"),
            process,
        )
        (workspace / "go").touch()
        out, err = process.communicate(timeout=60)
    finally:
        stopped(process)
    assert process.returncode == 0, out + err
    conflicts = of_kind(workspace, b_id, "patch.conflict")
    assert len(conflicts) == 1  # its first write was made from a file a changed since
    applied = of_kind(workspace, b_id, "patch.applied")
    assert len(applied) == 1  # and after reading it again, its write landed
    assert (workspace / "shared.txt").read_text() == "A\nB\n"


def test_no_more_children_run_at_once_than_the_setting_allows(workspace: Path) -> None:
    (workspace / "gm.toml").write_text("[agents]\nmax_concurrent = 1\n")
    parent(workspace, [ok(workspace, "a"), ok(workspace, "b")])

    assert gm("run", "task.md", *UNATTENDED, cwd=workspace).returncode == 0

    rows = {Path(r["model"]).stem: r["run_id"] for r in runs(workspace) if r["parent_run"]}
    seqs = {
        name: [e["seq"] for e in events(workspace, run_id)[2:]]  # after its creation
        for name, run_id in rows.items()
    }
    first, second = sorted(seqs.values(), key=min)
    assert max(first) < min(second)  # the second started only once the first had ended


def test_a_group_is_joined_once_a_later_wait_collects_only_new_children(
    workspace: Path,
) -> None:
    wait = {"tool_calls": [{"name": "wait_agents", "args": {"group": "g", "policy": "wait_any"}}]}
    write_script(
        workspace / "parent.yaml",
        [
            {"tool_calls": [spawn(ok(workspace, "a"))]},
            wait,
            {"tool_calls": [spawn(ok(workspace, "b"))]},
            wait,
            {"finish": "both"},
        ],
    )
    write_task(workspace / "task.md", "Twice.", model="scripted:parent.yaml")

    assert gm("run", "task.md", *UNATTENDED, cwd=workspace).returncode == 0

    run_id = parent_id(workspace)
    first, second = of_kind(workspace, run_id, "agents.joined")
    assert by_model(workspace, first) == {"a": "succeeded"}
    assert by_model(workspace, second) == {"b": "succeeded"}  # not satisfied by a again
    assert (workspace / "b.txt").read_text() == "b"


def test_last_names_the_parent_not_its_newest_child_and_a_fork_past_a_spawn_is_refused(
    workspace: Path,
) -> None:
    parent(workspace, [ok(workspace, "a")])
    assert gm("run", "task.md", *UNATTENDED, cwd=workspace).returncode == 0
    run_id = parent_id(workspace)
    logged = events(workspace, "last")
    assert {e["run_id"] for e in logged} == {run_id}
    spawned = next(
        e["seq"] for e in logged if e["kind"] == "job.intent" and e["data"]["kind"] == "agent"
    )
    late = max(e["seq"] for e in logged if e["kind"] == "checkpoint.saved")
    refused = gm("fork", run_id, "--at", str(late), cwd=workspace)
    assert refused.returncode == 2 and f"fork at a seq before {spawned}" in refused.stderr


def test_ctrl_c_while_waiting_for_children_pauses_the_parent(workspace: Path) -> None:
    parent(workspace, [blocked(workspace, "a")])
    process = gm_process("run", "task.md", *UNATTENDED, cwd=workspace)
    try:
        await_condition(
            "the parent waiting for its child",
            lambda: any(
                (r["status_reason"] or "").startswith("children:") for r in runs(workspace)
            ),
            process,
        )
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
    finally:
        stopped(process)
    assert process.returncode == 130
    row = next(r for r in runs(workspace) if r["run_id"] == parent_id(workspace))
    assert (row["status"], row["orphaned"]) == ("paused", False)


def test_undo_of_the_parent_takes_its_grandchildrens_changes_away_too(workspace: Path) -> None:
    grandchild = ok(workspace, "g")
    middle = child(
        workspace,
        "m",
        {"tool_calls": [spawn(grandchild, group="inner", max_steps=4)]},
        {"tool_calls": [{"name": "wait_agents", "args": {"group": "inner"}}]},
        {"finish": "delegated"},
    )
    parent(workspace, [middle])
    write_script(
        workspace / "parent.yaml",
        [
            {"tool_calls": [spawn(middle, max_steps=10)]},
            {"tool_calls": [{"name": "wait_agents", "args": {"group": "g"}}]},
            {"finish": "joined"},
        ],
    )
    assert gm("run", "task.md", *UNATTENDED, cwd=workspace).returncode == 0
    assert (workspace / "g.txt").read_text() == "g"

    undone = gm("undo", parent_id(workspace), cwd=workspace)

    assert undone.returncode == 0, undone.stderr
    assert not (workspace / "g.txt").exists()
