"""Budgets: a run checks its limits before each model request, waits when one is
reached, and goes on when resumed with a higher one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import gm
from tests.helpers import write_script, write_task

LIST = {"tool_calls": [{"name": "list_dir", "args": {}}]}


def write(n: int) -> dict[str, Any]:
    return {"tool_calls": [{"name": "write_file", "args": {"path": f"f{n}.txt", "content": "x"}}]}


def five_steps(workspace: Path, **front: Any) -> Path:
    """Four different calls (no loop), then finish."""
    steps = [write(1), write(2), write(3), write(4), {"finish": "five steps"}]
    write_script(workspace / "moves.yaml", steps)
    return write_task(workspace / "task.md", "Look around.", model="scripted:moves.yaml", **front)


def responses(workspace: Path) -> int:
    log = gm("log", "last", "--json", cwd=workspace).stdout.splitlines()
    return sum(1 for line in log if json.loads(line)["kind"] == "model.response")


def test_a_step_budget_of_2_stops_a_5_step_run_and_a_raise_finishes_it(workspace: Path) -> None:
    stopped = gm("run", str(five_steps(workspace)), "--max-steps", "2", cwd=workspace)
    assert stopped.returncode == 3, stopped.stderr
    assert "is waiting: budget: max_steps=2 reached (2 used)" in stopped.stderr
    assert "--max-steps N" in stopped.stderr
    assert responses(workspace) == 2
    status = gm("status", "last", cwd=workspace).stdout
    assert "status   waiting" in status and "steps    2 of 2" in status
    again = gm("resume", "last", cwd=workspace)  # nothing raised: it still waits, spends nothing
    assert again.returncode == 3 and responses(workspace) == 2
    raised = gm("resume", "last", "--max-steps", "10", cwd=workspace)
    assert raised.returncode == 0, raised.stderr
    assert responses(workspace) == 5
    assert "succeeded: five steps" in raised.stdout


def test_limits_from_gm_toml_and_the_task_and_raised_by_key(workspace: Path) -> None:
    (workspace / "gm.toml").write_text("[budget]\nmax_tool_calls = 2\nmax_output_tokens = 100\n")
    task = five_steps(workspace, budget={"max_output_tokens": 1000})
    stopped = gm("run", str(task), cwd=workspace)
    assert stopped.returncode == 3
    assert "budget: max_tool_calls=2 reached (2 used)" in stopped.stderr
    assert "--budget max_tool_calls=N" in stopped.stderr
    log = [
        json.loads(line) for line in gm("log", "last", "--json", cwd=workspace).stdout.splitlines()
    ]
    assert log[0]["data"]["budget"] == {"max_tool_calls": 2, "max_output_tokens": 1000}
    raised = gm("resume", "last", "--budget", "max_tool_calls=20", cwd=workspace)
    assert raised.returncode == 0, raised.stderr


def test_an_unknown_budget_key_is_a_usage_error(workspace: Path) -> None:
    gm("run", str(five_steps(workspace)), "--max-steps", "1", cwd=workspace)
    result = gm("resume", "last", "--budget", "max_dollars=5", cwd=workspace)
    assert result.returncode == 2
    assert "'max_dollars=5' is not KEY=VALUE with KEY one of max_input_tokens" in result.stderr


def test_the_same_call_with_the_same_result_three_times_stops_the_run_once(
    workspace: Path,
) -> None:
    write_script(workspace / "moves.yaml", [LIST, LIST, LIST, LIST, {"finish": "looked"}])
    task = write_task(workspace / "task.md", "Look.", model="scripted:moves.yaml")
    stopped = gm("run", str(task), cwd=workspace)
    assert stopped.returncode == 3
    assert "is waiting: loop: list_dir({}) gave the same result 3 times in a row" in stopped.stderr
    assert responses(workspace) == 3
    resumed = gm("resume", "last", cwd=workspace)  # a person looked: it may go on
    assert resumed.returncode == 0, resumed.stderr
    assert responses(workspace) == 5
