"""Crash recovery with real process deaths: each crash point, then `gm resume`.

A crash point (gm_agent.faults) kills the `gm` process with SIGKILL at an exact
place; `gm resume last` must then finish the run without repeating any side
effect whose result was recorded, and without blindly re-running one whose
outcome is unknown.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import gm
from tests.helpers import write_script, write_task

LEDGER_STEP = {"tool_calls": [{"name": "run_shell", "args": {"command": "echo one >> ledger.txt"}}]}
WRITE_STEP = {
    "tool_calls": [{"name": "write_file", "args": {"path": "out.txt", "content": "written\n"}}]
}
FINISH = {"finish": "done"}


def crash_then_resume(
    workspace: Path, moves: list[dict[str, Any]], point: str
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    write_script(workspace / "moves.yaml", moves)
    task = write_task(workspace / "task.md", "Do it.", model="scripted:moves.yaml")
    crashed = gm("run", str(task), cwd=workspace, env={"GM_CRASH_AT": point})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    resumed = gm("resume", "last", cwd=workspace)
    log = gm("log", "last", "--json", cwd=workspace)
    return resumed, [json.loads(line) for line in log.stdout.splitlines()]


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["kind"] for e in events]


def of_kind(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["kind"] == kind]


def test_crash_after_a_shell_intent_reports_the_job_ambiguous(workspace: Path) -> None:
    # Job 1 is the model request of step 1; job 2 is the shell command.
    resumed, events = crash_then_resume(workspace, [LEDGER_STEP, FINISH], "job.after_intent:2")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    (ambiguous,) = of_kind(events, "job.ambiguous")
    assert ambiguous["kind"] == "shell"
    (shell_reply,) = [r for r in of_kind(events, "tool.returned") if r["name"] == "run_shell"]
    assert not shell_reply["ok"] and shell_reply["output"].startswith("outcome unknown")
    assert not (workspace / "ledger.txt").exists()  # it never ran, and was not re-run
    assert "run.resumed" in kinds(events)


def test_crash_after_a_shell_effect_never_runs_it_again(workspace: Path) -> None:
    resumed, events = crash_then_resume(workspace, [LEDGER_STEP, FINISH], "job.after_effect:2")
    assert resumed.returncode == 0
    assert (workspace / "ledger.txt").read_text() == "one\n"  # ran once, before the crash
    assert len(of_kind(events, "job.ambiguous")) == 1
    assert of_kind(events, "job.result")[-1]["kind"] == "model"  # no shell result was invented
    # What it changed is still covered by a patch, found from its before-snapshot...
    (patch,) = [e for e in events if e["kind"] == "patch.applied"]
    assert patch["source"] == "job" and [f["path"] for f in patch["data"]["files"]] == [
        "ledger.txt"
    ]
    # ...so undo restores the workspace byte for byte.
    assert gm("undo", "last", cwd=workspace).returncode == 0
    assert not (workspace / "ledger.txt").exists()


def test_a_recorded_shell_result_is_served_not_rerun(workspace: Path) -> None:
    resumed, events = crash_then_resume(workspace, [LEDGER_STEP, FINISH], "tool.before_returned:1")
    assert resumed.returncode == 0
    assert (workspace / "ledger.txt").read_text() == "one\n"
    shell_results = [r for r in of_kind(events, "job.result") if r["kind"] == "shell"]
    assert len(shell_results) == 1
    (shell_reply,) = [r for r in of_kind(events, "tool.returned") if r["name"] == "run_shell"]
    assert (shell_reply["ok"], shell_reply["output"]) == (True, "exit code 0")
    assert of_kind(events, "job.ambiguous") == []


def test_a_model_request_cut_off_is_resent_under_the_same_job_and_key(workspace: Path) -> None:
    resumed, events = crash_then_resume(workspace, [LEDGER_STEP, FINISH], "job.after_effect:1")
    assert resumed.returncode == 0
    intents = [i for i in of_kind(events, "job.intent") if i["kind"] == "model"]
    results = [r for r in of_kind(events, "job.result") if r["kind"] == "model"]
    assert [r["job_id"] for r in results] == [
        i["job_id"] for i in intents
    ]  # one intent, one result each
    assert results[0]["key"] == intents[0]["key"]
    assert of_kind(events, "model.response")[0]["job_id"] == intents[0]["job_id"]
    assert (workspace / "ledger.txt").read_text() == "one\n"


def test_a_patch_written_but_not_recorded_is_completed_on_resume(workspace: Path) -> None:
    resumed, events = crash_then_resume(workspace, [WRITE_STEP, FINISH], "patch.after_write:1")
    assert resumed.returncode == 0
    assert (workspace / "out.txt").read_text() == "written\n"
    assert kinds(events).count("patch.intent") == 1
    assert kinds(events).count("patch.applied") == 1
    (reply,) = [r for r in of_kind(events, "tool.returned") if r["name"] == "write_file"]
    assert reply["ok"]


def test_a_patch_cut_off_before_writing_is_written_on_resume(workspace: Path) -> None:
    # Crash on the first tool.returned-less point after patch.intent: the write itself.
    write_script(workspace / "moves.yaml", [WRITE_STEP, FINISH])
    task = write_task(workspace / "task.md", "Do it.", model="scripted:moves.yaml")
    # Reproduce "intent committed, nothing written": crash at patch.after_write, then undo the write.
    crashed = gm("run", str(task), cwd=workspace, env={"GM_CRASH_AT": "patch.after_write"})
    assert crashed.returncode == -signal.SIGKILL
    (workspace / "out.txt").unlink()
    assert gm("resume", "last", cwd=workspace).returncode == 0
    assert (workspace / "out.txt").read_text() == "written\n"


def test_a_file_changed_by_the_user_during_the_crash_is_a_conflict_not_overwritten(
    workspace: Path,
) -> None:
    write_script(workspace / "moves.yaml", [WRITE_STEP, FINISH])
    task = write_task(workspace / "task.md", "Do it.", model="scripted:moves.yaml")
    assert (
        gm("run", str(task), cwd=workspace, env={"GM_CRASH_AT": "patch.after_write"}).returncode < 0
    )
    (workspace / "out.txt").write_text("the user's own text\n")
    assert gm("resume", "last", cwd=workspace).returncode == 0
    assert (workspace / "out.txt").read_text() == "the user's own text\n"
    log = [
        json.loads(line) for line in gm("log", "last", "--json", cwd=workspace).stdout.splitlines()
    ]
    (reply,) = [r for r in of_kind(log, "tool.returned") if r["name"] == "write_file"]
    assert not reply["ok"] and "changed on disk since" in reply["output"]
    assert "patch.conflict" in [e["kind"] for e in log]


def test_an_orphaned_run_is_listed_as_such_and_resume_all_finishes_it(workspace: Path) -> None:
    write_script(workspace / "moves.yaml", [LEDGER_STEP, FINISH])
    task = write_task(workspace / "task.md", "Do it.", model="scripted:moves.yaml")
    assert (
        gm("run", str(task), cwd=workspace, env={"GM_CRASH_AT": "job.after_effect:2"}).returncode
        < 0
    )
    (row,) = [json.loads(line) for line in gm("runs", "--json", cwd=workspace).stdout.splitlines()]
    assert (row["status"], row["orphaned"]) == ("running", True)
    assert "orphaned" in gm("runs", cwd=workspace).stdout
    assert gm("resume", "--all", cwd=workspace).returncode == 0
    (row,) = [json.loads(line) for line in gm("runs", "--json", cwd=workspace).stdout.splitlines()]
    assert (row["status"], row["orphaned"]) == ("succeeded", False)


def test_resuming_a_finished_run_is_refused(workspace: Path) -> None:
    write_script(workspace / "moves.yaml", [FINISH])
    task = write_task(workspace / "task.md", "Do it.", model="scripted:moves.yaml")
    assert gm("run", str(task), cwd=workspace).returncode == 0
    again = gm("resume", "last", cwd=workspace)
    assert again.returncode == 2 and "already succeeded" in again.stderr


def test_two_concurrent_resumes_one_executes_the_other_is_refused(workspace: Path) -> None:
    slow = {
        "tool_calls": [
            {"name": "run_shell", "args": {"command": "sleep 1.5; echo slept >> ledger.txt"}}
        ]
    }
    write_script(workspace / "moves.yaml", [LEDGER_STEP, slow, FINISH])
    task = write_task(workspace / "task.md", "Do it.", model="scripted:moves.yaml")
    assert (
        gm(
            "run", str(task), cwd=workspace, env={"GM_CRASH_AT": "tool.before_returned:1"}
        ).returncode
        < 0
    )
    command = [sys.executable, "-m", "gm_agent", "resume", "last"]
    first = subprocess.Popen(
        command, cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    second = subprocess.Popen(
        command, cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    outputs = [p.communicate(timeout=60) for p in (first, second)]
    codes = sorted([first.returncode, second.returncode])
    assert codes == [0, 2], outputs
    refused = next(
        err for (out, err), p in zip(outputs, (first, second), strict=True) if p.returncode == 2
    )
    assert "is being executed by" in refused and "lease" in refused
    assert (workspace / "ledger.txt").read_text() == "one\nslept\n"


def test_ctrl_c_during_a_shell_command_records_what_it_changed(workspace: Path) -> None:
    write_script(
        workspace / "moves.yaml",
        [
            {
                "tool_calls": [
                    {"name": "run_shell", "args": {"command": "echo changed > a.txt; sleep 30"}}
                ]
            },
            {"finish": "ok"},
        ],
    )
    task = write_task(workspace / "task.md", "Do it.", model="scripted:moves.yaml")
    process = subprocess.Popen(
        [sys.executable, "-m", "gm_agent", "run", str(task)],
        cwd=workspace,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for _ in range(200):
        if (workspace / "a.txt").exists():
            break
        subprocess.run(["sleep", "0.05"], check=True)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=30)
    assert process.returncode == 130
    events = [
        json.loads(line) for line in gm("log", "last", "--json", cwd=workspace).stdout.splitlines()
    ]
    assert {"job.cancelled", "patch.applied"} <= set(kinds(events))
    assert gm("undo", "last", cwd=workspace).returncode == 0
    assert not (workspace / "a.txt").exists()


def test_a_run_is_resumed_only_where_it_was_created(workspace: Path, tmp_path: Path) -> None:
    write_script(workspace / "moves.yaml", [LEDGER_STEP, FINISH])
    task = write_task(workspace / "task.md", "Do it.", model="scripted:moves.yaml")
    assert (
        gm("run", str(task), cwd=workspace, env={"GM_CRASH_AT": "job.after_intent:2"}).returncode
        < 0
    )
    moved = workspace.rename(tmp_path / "moved")
    refused = gm("resume", "last", cwd=moved)
    assert refused.returncode == 2 and "was the project moved or copied?" in refused.stderr


def test_a_crash_right_after_a_checkpoint_resumes_from_it_and_repeats_nothing(
    workspace: Path,
) -> None:
    (workspace / "gm.toml").write_text("[checkpoint]\nevery_steps = 1\n")
    moves = [LEDGER_STEP, WRITE_STEP, FINISH]
    # Checkpoint 1 is saved before step 2, checkpoint 2 before step 3: die right after it.
    resumed, events = crash_then_resume(workspace, moves, "checkpoint.after_save:2")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    saved = of_kind(events, "checkpoint.saved")
    assert [s["steps"] for s in saved] == [1, 2, 3]  # the two before the crash, then on exit
    assert (workspace / "ledger.txt").read_text() == "one\n"  # not run again
    assert len(of_kind(events, "patch.applied")) == 2  # the ledger, and out.txt once
    assert gm("replay", "last", "-q", cwd=workspace).returncode == 0
