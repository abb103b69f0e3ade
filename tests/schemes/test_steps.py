"""What each kind of step does and journals: `tool`, `llm` and `scheme` steps, a
skipped step, retries, and the reason a blocked run gives."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from tests.conftest import gm, gm_process
from tests.helpers import await_condition, events, kinds, ledger, of_kind, stopped, write_script
from tests.schemes.helpers import scheme_events, scheme_run_id, write_scheme

pytestmark = pytest.mark.sandbox

SECRET = "sk-supersecretvalue12345"


def test_tool_steps_read_write_and_load_skills_and_never_journal_a_secret(
    workspace: Path,
) -> None:
    (workspace / "conf.txt").write_text(f"token={SECRET}\n")
    skill = workspace / ".gm" / "skills" / "greet"
    skill.mkdir(parents=True)
    (skill / "SKILL.md").write_text(
        "---\nname: greet\ndescription: How to greet.\n---\nSay hello politely.\n"
    )
    write_scheme(
        workspace,
        "tools",
        """\
        - name: read
          tool: {name: read_file, args: {path: conf.txt}}
        - name: skill
          tool: {name: load_skill, args: {name: greet}}
        - name: write
          depends_on: [read]
          tool: {name: write_file, args: {path: copy.txt, content: "{{ steps.read.output }}"}}
        """,
    )

    ran = gm("scheme", "run", "tools", cwd=workspace, env={"OPENAI_API_KEY": SECRET})

    assert ran.returncode == 0, ran.stdout + ran.stderr
    run_id = scheme_run_id(workspace)
    logged = gm("log", "--json", run_id, cwd=workspace).stdout
    assert SECRET not in logged
    read, skill_result, write = of_kind(workspace, run_id, "job.result")
    assert "token=[redacted: OPENAI_API_KEY]" in read["output"]
    assert skill_result["ok"] and "Say hello politely." in skill_result["output"]
    assert write["ok"] and "[redacted: OPENAI_API_KEY]" in (workspace / "copy.txt").read_text()
    assert gm("undo", run_id, cwd=workspace).returncode == 0
    assert not (workspace / "copy.txt").exists()


def test_an_llm_answer_refused_is_journaled_and_the_retry_tells_the_model_why(
    workspace: Path,
) -> None:
    write_scheme(
        workspace,
        "triage",
        """\
        - name: triage
          llm:
            prompt: "How bad is it?"
            schema: {type: object, required: [severity]}
          retry: {attempts: 2}
        - name: note
          depends_on: [triage]
          shell: "echo {{ steps.triage.value.severity }} >> ledger"
        """,
    )
    # The scripted model answers by the turns it is shown: its second move only
    # when the request carries its first answer and why it was refused.
    moves = [{"text": "It is quite bad."}, {"text": '```json\n{"severity": "high"}\n```'}]
    script = write_script(workspace.parent / "moves.yaml", moves)

    ran = gm("scheme", "run", "triage", "--model", f"scripted:{script}", cwd=workspace)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ledger(workspace) == ["high"]
    run_id = scheme_run_id(workspace)
    seen = [k for k in kinds(workspace, run_id) if k.startswith(("job.", "model."))][:5]
    assert seen == [
        "job.intent",
        "model.response",
        "job.attempt_failed",
        "model.response",
        "job.result",
    ]
    first, second = of_kind(workspace, run_id, "model.response")
    assert first["text"] == "It is quite bad." and first["usage"]["output_tokens"] > 0
    assert second["usage"]["input_tokens"] > first["usage"]["input_tokens"]
    (failed,) = of_kind(workspace, run_id, "job.attempt_failed")
    assert failed["error"].startswith("the answer is not JSON")


def test_a_called_scheme_is_one_journaled_step_served_on_resume(workspace: Path) -> None:
    write_scheme(workspace, "inner", '- name: x\n  shell: "echo inner-x >> ledger; exit 1"\n')
    write_scheme(
        workspace,
        "outer",
        """\
        - name: sub
          scheme: {name: inner}
          on_error: continue
        - name: gate
          depends_on: [sub]
          when: "{{ steps.sub.failed }}"
          shell: "echo gate >> ledger; test -f open"
        """,
    )
    blocked = gm("scheme", "run", "outer", cwd=workspace)
    assert blocked.returncode == 3, blocked.stdout + blocked.stderr
    run_id = scheme_run_id(workspace)
    (workspace / "open").touch()

    resumed = gm("resume", run_id, cwd=workspace)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert ledger(workspace) == ["inner-x", "gate", "gate"]  # the called scheme ran once
    results = of_kind(workspace, run_id, "job.result")
    sub = [r for r in results if r["kind"] == "scheme"]
    assert [(r["key"], r["ok"], r["error"]) for r in sub] == [
        (f"{run_id}/scheme/sub/1", False, "step 'sub.x' failed")
    ]
    (finished,) = of_kind(workspace, run_id, "run.finished")
    assert finished["summary"].startswith(
        "scheme outer: 1 steps succeeded, 0 skipped, 1 failed (on_error: continue)"
    )


def test_a_skipped_step_outputs_nothing_and_its_reason_stays_in_its_event(
    workspace: Path,
) -> None:
    write_scheme(
        workspace,
        "skip",
        """\
        - name: b
          when: "{{ false }}"
          shell: "echo b >> ledger"
        - name: c
          depends_on: [b]
          when: "{{ steps.b.skipped }}"
          shell: "echo '[{{ steps.b.output }}]' >> ledger"
        """,
    )

    ran = gm("scheme", "run", "skip", cwd=workspace)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ledger(workspace) == ["[]"]
    (skipped,) = of_kind(workspace, scheme_run_id(workspace), "scheme.step_skipped")
    assert skipped == {"step": "b", "reason": "when is false: {{ false }}"}


def test_a_blocked_run_names_the_error_once_and_keeps_its_reason_short(workspace: Path) -> None:
    write_scheme(workspace, "quiet", '- name: a\n  shell: "exit 3"\n')
    write_scheme(workspace, "loud", "- name: a\n  shell: \"printf '%0900d' 0; exit 4\"\n")

    quiet = gm("scheme", "run", "quiet", cwd=workspace)
    loud = gm("scheme", "run", "loud", cwd=workspace)

    assert quiet.returncode == loud.returncode == 3
    assert "step 'a' failed (exit code 3); fix the cause, then `gm resume" in quiet.stderr
    reason = loud.stderr.split(" is waiting: ", 1)[1]
    assert reason.startswith("step 'a' failed (exit code 4): [... 600 chars cut]\n000")
    assert len(reason) < 500


def test_a_retried_command_frees_the_writer_lock_while_it_waits(workspace: Path) -> None:
    write_scheme(
        workspace,
        "flaky",
        """\
        - name: flaky
          shell: "echo try >> ledger; exit 1"
          retry: {attempts: 2, backoff_s: 600}
        """,
    )
    process = gm_process("scheme", "run", "flaky", cwd=workspace)
    try:
        await_condition(
            "the first attempt's failure",
            lambda: "job.attempt_failed" in scheme_events(workspace),
            process,
        )
        run_id = scheme_run_id(workspace)
        # Another process can change the workspace during the backoff.
        fd = os.open(workspace / ".gm" / "writer.lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if it were held
        finally:
            os.close(fd)
        assert gm("cancel", run_id, cwd=workspace).returncode == 0
        process.communicate(timeout=60)
    finally:
        stopped(process)
    seen = [
        e["kind"] for e in events(workspace, run_id) if e["kind"].startswith(("job.", "patch."))
    ]
    # The failed attempt's change is a patch of its own, before the wait.
    assert seen == ["job.intent", "patch.applied", "job.attempt_failed", "job.cancelled"]
    assert gm("undo", run_id, cwd=workspace).returncode == 0
    assert ledger(workspace) == []
