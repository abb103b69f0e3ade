"""Running schemes durably (`gm scheme run`, `gm resume`), with real shell steps in
real `gm` processes: each step is a job, completed steps are never run again, and
`on_error` decides what a failure does."""

from __future__ import annotations

import signal
from pathlib import Path

import anyio
import pytest

from gm_agent.clock import SystemClock
from gm_agent.journal import Journal
from gm_agent.schemes import load_scheme, topological_order
from gm_agent.settings import ScheduleTrigger, load_settings
from gm_agent.triggers._launch import Firing, Launcher
from tests.conftest import gm, gm_process
from tests.helpers import await_condition, events, kinds, ledger, runs, stopped, write_script
from tests.schemes.helpers import scheme_run_id, write_scheme

pytestmark = pytest.mark.sandbox


DIAMOND = """\
- name: a
  shell: "echo a >> ledger; echo from-a"
- name: b
  depends_on: [a]
  shell: "echo b >> ledger; echo b saw {{ steps.a.output | trim }}"
- name: c
  depends_on: [a]
  shell: "echo c >> ledger"
- name: d
  depends_on: [b, c]
  shell: "echo d >> ledger"
"""


def test_a_diamond_runs_each_step_once_as_a_job_and_the_join_last(workspace: Path) -> None:
    path = write_scheme(workspace, "diamond", DIAMOND)
    assert topological_order(load_scheme(path)) == [["a"], ["b", "c"], ["d"]]

    ran = gm("scheme", "run", "diamond", cwd=workspace)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ledger(workspace) == ["a", "b", "c", "d"]
    run_id = scheme_run_id(workspace)
    logged = events(workspace, run_id)
    keys = [e["data"]["key"] for e in logged if e["kind"] == "job.result"]
    assert keys == [f"{run_id}/scheme/{step}/1" for step in "abcd"]
    assert "b saw from-a" in ran.stdout  # a template read an earlier step's output
    assert [r["status"] for r in runs(workspace)] == ["succeeded"]
    # Every byte a command wrote is a patch: undo takes the ledger away again.
    assert sum(e["kind"] == "patch.applied" for e in logged) == 4
    undone = gm("undo", run_id, cwd=workspace)
    assert undone.returncode == 0, undone.stderr
    assert not (workspace / "ledger").exists()


def test_a_failing_step_is_retried_until_its_third_attempt_succeeds(workspace: Path) -> None:
    write_scheme(
        workspace,
        "flaky",
        """\
        - name: flaky
          shell: "echo x >> counter; [ $(wc -l < counter) -ge 3 ]"
          retry: {attempts: 3, backoff_s: 0}
        """,
    )

    ran = gm("scheme", "run", "flaky", cwd=workspace)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    run_id = scheme_run_id(workspace)
    seen = kinds(workspace, run_id)
    jobs = [k for k in seen if k.startswith("job.")]
    assert jobs == ["job.intent", "job.attempt_failed", "job.attempt_failed", "job.result"]
    assert (workspace / "counter").read_text().count("x") == 3


def test_blocked_stops_the_run_waiting_and_names_the_step(workspace: Path) -> None:
    write_scheme(
        workspace,
        "gated",
        """\
        - name: check
          shell: "echo the gate is closed; exit 1"
        - name: after
          depends_on: [check]
          shell: "echo after >> ledger"
        """,
    )

    ran = gm("scheme", "run", "gated", cwd=workspace)

    assert ran.returncode == 3, ran.stdout + ran.stderr
    assert "step 'check' failed (exit code 1): the gate is closed" in ran.stderr
    assert "gm resume" in ran.stderr
    assert ledger(workspace) == []
    assert [r["status"] for r in runs(workspace)] == ["waiting"]


def test_continue_records_the_failure_and_a_when_can_test_it(workspace: Path) -> None:
    write_scheme(
        workspace,
        "lint",
        """\
        - name: lint
          shell: "echo lint >> ledger; exit 4"
          on_error: continue
        - name: report
          depends_on: [lint]
          when: "{{ steps.lint.failed }}"
          shell: "echo report-{{ steps.lint.exit_code }} >> ledger"
        - name: publish
          depends_on: [lint]
          shell: "echo publish >> ledger"
        """,
    )

    ran = gm("scheme", "run", "lint", cwd=workspace)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ledger(workspace) == ["lint", "report-4"]  # publish needs lint to succeed
    skipped = [
        e["data"]
        for e in events(workspace, scheme_run_id(workspace))
        if e["kind"] == "scheme.step_skipped"
    ]
    assert skipped == [
        {
            "step": "publish",
            "reason": "'lint' failed, and the step has no `when` saying to run anyway",
        }
    ]


def test_fallback_hands_the_rest_to_an_agent_that_is_told_what_failed(workspace: Path) -> None:
    write_scheme(
        workspace,
        "ship",
        """\
        - name: build
          shell: "echo 'error: missing semicolon'; exit 2"
          on_error: fallback
        - name: deploy
          depends_on: [build]
          shell: "echo deploy >> ledger"
        """,
    )
    script = write_script(workspace.parent / "moves.yaml", [{"finish": "fixed and deployed"}])

    ran = gm("scheme", "run", "ship", "--model", f"scripted:{script}", cwd=workspace)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ledger(workspace) == []  # the rest was the agent's to do
    (agent,) = [r for r in runs(workspace) if not r["task"].startswith("scheme ")]
    assert agent["status"] == "succeeded"
    task = agent["task"]
    assert "its step 'build' failed" in task
    assert "error: missing semicolon" in task
    assert "- deploy: NOT RUN YET" in task
    created = events(workspace, agent["run_id"])[0]["data"]
    assert created["parent_run"] == scheme_run_id(workspace)
    (scheme_run,) = [r for r in runs(workspace) if r["task"].startswith("scheme ")]
    assert "fixed and deployed" in scheme_run["summary"]


SLOW = """\
- name: a
  shell: "echo a >> ledger"
- name: slow
  depends_on: [a]
  shell: "echo slow >> ledger; while [ ! -f go ]; do sleep 0.1; done"
  idempotent: {idempotent}
- name: c
  depends_on: [slow]
  shell: "echo c >> ledger"
"""


def kill_in_slow(workspace: Path) -> None:
    """Start the scheme, SIGKILL gm while `slow` runs, then let `slow` end."""
    process = gm_process("scheme", "run", "slow", cwd=workspace)
    try:
        await_condition("the slow step", lambda: "slow" in ledger(workspace), process)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    finally:
        stopped(process)
        (workspace / "go").touch()  # the orphaned command, if it survived, ends
    assert process.returncode == -signal.SIGKILL


def test_after_sigkill_an_idempotent_step_is_run_again_and_done_ones_are_not(
    workspace: Path,
) -> None:
    write_scheme(workspace, "slow", SLOW.format(idempotent="true"))
    kill_in_slow(workspace)

    resumed = gm("resume", scheme_run_id(workspace), cwd=workspace)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert ledger(workspace) == ["a", "slow", "slow", "c"]  # a is served, not re-run
    run_id = scheme_run_id(workspace)
    intents = [e["data"]["key"] for e in events(workspace, run_id) if e["kind"] == "job.intent"]
    assert intents == [f"{run_id}/scheme/{s}/1" for s in ("a", "slow", "c")]  # same key
    # What the killed attempt wrote is a patch of its own, recorded before the re-run:
    # undo takes every byte away again.
    undone = gm("undo", run_id, cwd=workspace)
    assert undone.returncode == 0, undone.stderr
    assert not (workspace / "ledger").exists()


def test_after_sigkill_a_step_that_is_not_idempotent_is_ambiguous_and_blocks(
    workspace: Path,
) -> None:
    write_scheme(workspace, "slow", SLOW.format(idempotent="false"))
    kill_in_slow(workspace)
    run_id = scheme_run_id(workspace)

    blocked = gm("resume", run_id, cwd=workspace)

    assert blocked.returncode == 3, blocked.stdout + blocked.stderr
    assert "step 'slow': outcome unknown" in blocked.stderr
    assert "job.ambiguous" in kinds(workspace, run_id)
    assert ledger(workspace) == ["a", "slow"]

    finished = gm("resume", run_id, cwd=workspace)  # a person checked: run it again

    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert ledger(workspace) == ["a", "slow", "slow", "c"]
    intents = [e["data"]["key"] for e in events(workspace, run_id) if e["kind"] == "job.intent"]
    assert intents[-2:] == [f"{run_id}/scheme/slow/2", f"{run_id}/scheme/c/1"]


def test_the_shipped_test_and_fix_scheme_fixes_with_an_agent_end_to_end(workspace: Path) -> None:
    script = write_script(
        workspace.parent / "fix.yaml",
        [
            {"tool_calls": [{"name": "run_shell", "args": {"command": "echo ok > fixed.txt"}}]},
            {"finish": "created fixed.txt"},
        ],
    )

    ran = gm(
        "scheme", "run", "test-and-fix", "-p", "test_cmd=test -f fixed.txt",
        "--model", f"scripted:{script}", "--yes",
        cwd=workspace,
    )  # fmt: skip

    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (workspace / "fixed.txt").read_text() == "ok\n"
    run_id = scheme_run_id(workspace)
    results = [e["data"] for e in events(workspace, run_id) if e["kind"] == "job.result"]
    assert [(r["kind"], r["ok"]) for r in results] == [
        ("shell", False),
        ("agent", True),
        ("shell", True),
    ]
    (agent,) = [r for r in runs(workspace) if r["run_id"] != run_id]
    assert agent["task"].startswith("The tests failed:")
    assert results[1]["output"] == "created fixed.txt"


def test_a_bad_parameter_is_refused_before_anything_runs(workspace: Path) -> None:
    write_scheme(
        workspace, "p", "- name: a\n  shell: echo {{ params.n }}\n", "n: {type: integer}\n"
    )

    ran = gm("scheme", "run", "p", "-p", "n=many", cwd=workspace)

    assert ran.returncode == 2
    assert "the parameter 'n' takes an integer, like 3, not 'many'" in ran.stderr
    assert not (workspace / ".gm" / "journal.db").exists() or runs(workspace) == []


def test_a_scheme_run_is_listed_and_logged_like_any_run(workspace: Path) -> None:
    write_scheme(workspace, "one", "- name: a\n  shell: echo hi\n")
    assert gm("scheme", "run", "one", cwd=workspace).returncode == 0

    listed = gm("runs", cwd=workspace)
    logged = gm("log", "last", cwd=workspace)

    assert "succeeded" in listed.stdout and "scheme one" in listed.stdout
    assert "scheme/a/1" in logged.stdout


@pytest.mark.anyio
async def test_a_trigger_can_name_a_scheme_and_its_params(workspace: Path) -> None:
    write_scheme(
        workspace,
        "greet",
        '- name: a\n  shell: "echo {{ params.who }} >> ledger"\n',
        "who: {type: string}\n",
    )
    settings = load_settings(workspace, {})
    trigger = ScheduleTrigger(
        name="nightly", on="schedule", every="1h", scheme="greet", params={"who": "world"}
    )
    clock = SystemClock()
    async with await Journal.open(settings.journal_path, clock=clock) as journal:
        async with anyio.create_task_group() as group:
            launcher = Launcher(settings, {}, journal, clock, group)
            accepted, run_id = await launcher.fire(Firing(trigger))
        row = await journal.get_run(str(run_id))

    assert accepted == "started"
    assert (row.status, row.task) == ("succeeded", 'scheme greet who="world"')
    assert ledger(workspace) == ["world"]


def test_a_trigger_names_a_task_or_a_scheme_not_both() -> None:
    with pytest.raises(ValueError, match="either a task"):
        ScheduleTrigger(name="n", on="schedule", every="1h", task="t.md", scheme="greet")
