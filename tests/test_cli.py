"""The `gm` command as a user runs it: real subprocesses, exit codes, output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import gm
from tests.helpers import write_script, write_task

MOVES = [
    {"tool_calls": [{"name": "write_file", "args": {"path": "hello.txt", "content": "hello\n"}}]},
    {"finish": "created hello.txt"},
]


def scripted_task(workspace: Path, moves: list[dict[str, object]] = MOVES) -> Path:
    write_script(workspace / "moves.yaml", moves)
    return write_task(workspace / "task.md", "Create hello.txt.", model="scripted:moves.yaml")


def test_run_prints_progress_and_exits_0_on_success(workspace: Path) -> None:
    result = gm("run", str(scripted_task(workspace)), cwd=workspace)
    assert result.returncode == 0, result.stderr
    assert "→ write_file(" in result.stdout
    assert "✓ created hello.txt (6 bytes)" in result.stdout
    assert result.stdout.rstrip().endswith("succeeded: created hello.txt")
    assert (workspace / "hello.txt").read_text() == "hello\n"


def test_run_json_prints_every_committed_event_as_gm_log_does(workspace: Path) -> None:
    result = gm("run", str(scripted_task(workspace)), "--json", cwd=workspace)
    assert result.returncode == 0, result.stderr
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert [set(r) for r in printed] == [
        {"seq", "id", "run_id", "kind", "v", "at", "source", "causation_id", "data"}
    ] * len(printed)
    logged = gm("log", "last", "--json", cwd=workspace)
    assert logged.returncode == 0
    assert [json.loads(line) for line in logged.stdout.splitlines()] == printed
    assert [e["kind"] for e in printed[-2:]] == ["run.finished", "checkpoint.saved"]
    assert printed[-2]["data"]["status"] == "succeeded"


def test_exit_code_1_when_the_run_fails(workspace: Path) -> None:
    task = scripted_task(workspace, [{"tool_calls": [{"name": "list_dir", "args": {}}]}])
    result = gm("run", str(task), cwd=workspace)
    assert result.returncode == 1
    assert "failed: model request failed" in result.stdout and "has 1 moves" in result.stdout


def test_a_malformed_task_exits_2_naming_the_line_and_journals_nothing(workspace: Path) -> None:
    (workspace / "task.md").write_text("---\nmodel: scripted:m.yaml\nmax_stepz: 3\n---\nDo it.\n")
    result = gm("run", "task.md", cwd=workspace)
    assert result.returncode == 2
    assert "task.md:3: front matter 'max_stepz': unknown key" in result.stderr
    assert not (workspace / ".gm").exists()


def test_usage_errors_exit_2(workspace: Path) -> None:
    assert gm("run", "missing.md", cwd=workspace).returncode == 2
    assert (
        gm("run", str(scripted_task(workspace)), "--max-steps", "0", cwd=workspace).returncode == 2
    )
    unknown = gm("run", str(scripted_task(workspace)), "--model", "nosuch:x", cwd=workspace)
    assert unknown.returncode == 2 and "unknown model provider" in unknown.stderr
    no_journal = gm("log", "last", cwd=workspace)
    assert no_journal.returncode == 1 and "no journal" in no_journal.stderr


def test_runs_status_and_log_read_the_journal(workspace: Path) -> None:
    assert gm("run", str(scripted_task(workspace)), cwd=workspace).returncode == 0
    runs = gm("runs", "--json", cwd=workspace)
    (row,) = [json.loads(line) for line in runs.stdout.splitlines()]
    assert (row["status"], row["steps"], row["summary"]) == ("succeeded", 2, "created hello.txt")
    table = gm("runs", cwd=workspace).stdout
    assert row["run_id"] in table and "succeeded" in table
    status = gm("status", row["run_id"][:8], cwd=workspace)
    assert "status   succeeded" in status.stdout and "changed  hello.txt" in status.stdout
    log = gm("log", row["run_id"].lower(), cwd=workspace)
    assert (
        log.returncode == 0 and "patch.applied" in log.stdout and "create hello.txt" in log.stdout
    )
    missing = gm("status", "ZZZZ", cwd=workspace)
    assert missing.returncode == 2 and "no run matches 'ZZZZ'" in missing.stderr


def test_log_follow_streams_a_run_from_another_process_until_it_finishes(workspace: Path) -> None:
    moves = [
        {"tool_calls": [{"name": "run_shell", "args": {"command": "sleep 0.3"}}]},
        {"tool_calls": [{"name": "run_shell", "args": {"command": "sleep 0.3"}}]},
        {"finish": "slept"},
    ]
    runner = subprocess.Popen(
        [sys.executable, "-m", "gm_agent", "run", str(scripted_task(workspace, moves))],
        cwd=workspace,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Wait until the run exists, then follow it while it is still running.
    for _ in range(200):
        if gm("runs", "--json", cwd=workspace).stdout.strip():
            break
        subprocess.run(["sleep", "0.05"], check=True)
    followed = gm("log", "last", "--follow", "--json", cwd=workspace, timeout=60)
    runner.communicate(timeout=60)
    assert runner.returncode == 0
    kinds = [json.loads(line)["kind"] for line in followed.stdout.splitlines()]
    assert kinds[0] == "run.created" and kinds[-1] == "run.finished"
    assert kinds.count("job.result") == 5  # three model requests, two shell commands


def test_version_and_help() -> None:
    from gm_agent import __version__

    version = gm("--version", cwd=Path.cwd())
    assert version.returncode == 0 and __version__ in version.stdout
    help_text = gm("--help", cwd=Path.cwd()).stdout
    for command in ("run", "runs", "log", "status"):
        assert f"  {command} " in help_text


def test_help_does_not_import_the_heavy_modules() -> None:
    probe = (
        "import sys; from click.testing import CliRunner; from gm_agent.cli import main; "
        "CliRunner().invoke(main, ['--help']); "
        "print(sorted(m for m in ('pydantic', 'sqlite3', 'httpx', 'llama_cpp', 'yaml') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_a_scripted_run_and_its_resume_import_no_http_client_nor_jinja2(workspace: Path) -> None:
    """Those are for the HTTP providers and for schemes; a run with a local or
    scripted model starts (and resumes) without them."""
    task = scripted_task(workspace)
    probe = (
        "import sys; from click.testing import CliRunner; from gm_agent.cli import main; "
        "result = CliRunner().invoke(main, sys.argv[1:]); "
        "print(result.exit_code, sorted(m for m in ('httpx', 'jinja2', 'gm_agent.llm.openai', "
        "'gm_agent.llm.anthropic', 'gm_agent.llm.gemini') if m in sys.modules))"
    )
    for args in (["run", str(task)], ["resume", "--all"]):
        out = subprocess.run(
            [sys.executable, "-c", probe, *args],
            cwd=workspace,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.strip().splitlines()[-1] == "0 []", out


def test_export_gives_a_markdown_transcript_and_json_lines(workspace: Path) -> None:
    assert gm("run", str(scripted_task(workspace)), cwd=workspace).returncode == 0
    transcript = gm("export", "last", cwd=workspace).stdout
    assert transcript.startswith("# Run ")
    assert "## User\n\nCreate hello.txt." in transcript
    assert "**write_file**" in transcript and '"path": "hello.txt"' in transcript
    assert "*Files changed:* `hello.txt` (create)" in transcript
    assert transcript.rstrip().endswith("created hello.txt")
    jsonl = gm("export", "last", "--format", "jsonl", cwd=workspace).stdout
    assert jsonl == gm("log", "last", "--json", cwd=workspace).stdout


def test_doctor_says_what_works_here_and_fails_on_an_unreachable_model(workspace: Path) -> None:
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        up = gm("doctor", cwd=workspace, env={"GM_MODEL": url})
        assert up.returncode == 0, up.stdout
        lines = up.stdout.splitlines()
        assert lines[0].split()[1] == "sandbox"
        assert lines[1].startswith("✓ journal  none yet")
        assert lines[2].startswith(f"✓ model    {url}: {url} answers (HTTP 501)")
    finally:
        server.shutdown()
        server.server_close()
    down = gm("doctor", cwd=workspace, env={"GM_MODEL": url})
    assert down.returncode == 1 and "cannot be reached" in down.stdout
    assert not (workspace / ".gm").exists()  # the doctor writes nothing


def test_run_id_chooses_the_new_runs_id_once(workspace: Path) -> None:
    write_script(workspace / "moves.yaml", [{"finish": "done"}])
    write_task(workspace / "task.md", "Finish.", model="scripted:moves.yaml")
    chosen = "01KDVDNA0000000000000000AB"
    assert gm("run", "task.md", "--run-id", chosen, cwd=workspace).returncode == 0
    assert gm("status", chosen, cwd=workspace).returncode == 0
    again = gm("run", "task.md", "--run-id", chosen, cwd=workspace)
    assert again.returncode == 2 and f"there is already a run {chosen!r}" in again.stderr
    bad = gm("run", "task.md", "--run-id", "run-1", cwd=workspace)
    assert bad.returncode == 2 and "is not a ULID" in bad.stderr
    runs = gm("runs", "--json", cwd=workspace).stdout.splitlines()
    assert len(runs) == 1  # neither refusal journaled anything


def test_no_input_and_wait_for_approval_together_are_a_usage_error(workspace: Path) -> None:
    write_task(workspace / "task.md", "Finish.", model="scripted:moves.yaml")
    both = gm("run", "task.md", "--no-input", "--wait-for-approval", cwd=workspace)
    assert both.returncode == 2 and "choose one" in both.stderr
    assert not (workspace / ".gm" / "journal.db").exists()


def test_run_tui_says_at_once_why_its_background_run_did_not_start(workspace: Path) -> None:
    write_task(workspace / "task.md", "Finish.", model="nope:nothing")
    started = gm("run", "task.md", "--tui", cwd=workspace, timeout=30)  # not the 60 s wait
    assert started.returncode == 2
    assert "the run did not start (gm run exited with 2)" in started.stderr
    assert "nope" in started.stderr and ".gm/logs/run-" in started.stderr


def test_a_chosen_run_id_is_a_ulid_in_any_case_and_kept_in_canonical_form() -> None:
    from gm_agent.kernel import checked_run_id

    assert checked_run_id("01m7zwx1aavk6pkw5v20ssqwhd") == "01M7ZWX1AAVK6PKW5V20SSQWHD"
    assert checked_run_id(None) is None


def test_run_tui_refuses_a_run_id_that_is_not_a_ulid_before_starting_anything(
    workspace: Path,
) -> None:
    write_task(workspace / "task.md", "Finish.", model="scripted:moves.yaml")
    refused = gm("run", "task.md", "--tui", "--run-id", "run-1", cwd=workspace, timeout=30)
    assert refused.returncode == 2 and "is not a ULID" in refused.stderr
    assert not (workspace / ".gm" / "logs").exists()
