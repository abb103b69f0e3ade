"""`gm serve` end to end: a real daemon process, real HTTP on 127.0.0.1, real file events."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gm_agent.triggers.webhooks import sign_github
from tests.conftest import gm, gm_process
from tests.helpers import write_script

pytestmark = pytest.mark.sandbox

PAYLOADS = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "webhooks" / "github"
SECRET = "It's a Secret to Everybody"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


class Daemon:
    """`gm serve` in a subprocess; its webhook URL once it is ready."""

    def __init__(self, workspace: Path) -> None:
        self.process = gm_process(
            "serve", "--port", "0", cwd=workspace, env={"GM_WEBHOOK_SECRET": SECRET}
        )
        self.lines: list[str] = []
        self.url: str | None = None
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            if found := re.search(r"webhooks at (http://\S+)", line):
                self.url = found[1]
            if "ready" in line:
                return
        raise AssertionError("gm serve stopped: " + "".join(self.lines))

    def stop(self) -> str:
        self.process.send_signal(signal.SIGINT)
        _, err = self.process.communicate(timeout=30)
        return "".join(self.lines) + err


@pytest.fixture
def project(workspace: Path) -> Path:
    script = write_script(workspace.parent / "moves.yaml", [{"finish": "reviewed"}])
    write(
        workspace / "tasks" / "review.md",
        f"---\nmodel: scripted:{script}\n---\n"
        "Review the pull request {{ payload.pull_request.title }} ({{ event }}).\n",
    )
    write(
        workspace / "gm.toml",
        "[[triggers]]\n"
        'name = "pr-opened"\non = "webhook"\npath = "/hooks/github"\nformat = "github"\n'
        'secret_env = "GM_WEBHOOK_SECRET"\ntask = "tasks/review.md"\n\n'
        "[serve]\nmax_body_bytes = 65536\n",
    )
    return workspace


@pytest.fixture
def daemon(project: Path) -> Iterator[Daemon]:
    running = Daemon(project)
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.stop()


def post(daemon: Daemon, body: bytes, headers: dict[str, str]) -> httpx.Response:
    assert daemon.url is not None
    return httpx.post(f"{daemon.url}/hooks/github", content=body, headers=headers, timeout=30)


def github_headers(body: bytes, delivery: str, secret: str = SECRET) -> dict[str, str]:
    return {
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign_github(secret, body),
        "Content-Type": "application/json",
    }


def events(workspace: Path, stream: str) -> list[dict[str, object]]:
    logged = gm("log", "--json", stream, cwd=workspace)
    return [json.loads(line) for line in logged.stdout.splitlines()]


def run_count(workspace: Path) -> int:
    return len(gm("runs", "--json", cwd=workspace).stdout.splitlines())


def wait_until(check: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_a_signed_github_delivery_starts_one_run_that_sees_the_payload(
    project: Path, daemon: Daemon
) -> None:
    body = (PAYLOADS / "pull_request" / "opened.payload.json").read_bytes()
    first = post(daemon, body, github_headers(body, "d-1"))
    assert first.status_code == 202, first.text
    run_id = first.json()["run_id"]
    wait_until(lambda: any(e["kind"] == "run.finished" for e in events(project, run_id)))
    run = events(project, run_id)
    task = next(e["data"]["text"] for e in run if e["kind"] == "user.message")
    assert "Review the pull request Update the README with new information. (pull_request)" in task
    assert run[-2]["data"]["status"] == "succeeded"
    again = post(daemon, body, github_headers(body, "d-1"))  # GitHub redelivers
    assert (again.status_code, again.json()) == (200, {"status": "duplicate", "run_id": run_id})
    (fired,) = [e for e in events(project, "trigger:pr-opened") if e["kind"] == "trigger.fired"]
    assert fired["data"]["payload"] == json.loads(body)  # the journal holds the payload
    assert fired["data"]["started_run"] == run_id
    assert run_count(project) == 1


@pytest.mark.parametrize(
    ("name", "headers", "body", "status"),
    [
        ("wrong signature", {"X-Hub-Signature-256": sign_github("guess", b"{}")}, b"{}", 401),
        ("missing signature", {}, b"{}", 401),
        ("oversized body", None, b'{"a": "' + b"x" * 70_000 + b'"}', 413),
    ],
)
def test_forged_or_oversized_deliveries_are_refused_and_run_nothing(
    project: Path,
    daemon: Daemon,
    name: str,
    headers: dict[str, str] | None,
    body: bytes,
    status: int,
) -> None:
    sent = github_headers(body, f"bad-{name}")
    if headers is not None:
        sent.pop("X-Hub-Signature-256")
        sent.update(headers)
    answer = post(daemon, body, sent)
    assert answer.status_code == status, answer.text
    (rejected,) = [
        e for e in events(project, "trigger:pr-opened") if e["kind"] == "webhook.rejected"
    ]
    assert rejected["data"]["status"] == status
    assert run_count(project) == 0


def test_file_changes_start_one_run_per_burst_and_the_agents_own_edits_none(
    workspace: Path,
) -> None:
    script = write_script(
        workspace.parent / "moves.yaml",
        [
            {
                "tool_calls": [
                    {
                        "name": "write_file",
                        "args": {"path": "docs/index.md", "content": "# Index\n"},
                    }
                ]
            },
            {"finish": "indexed"},
        ],
    )
    write(
        workspace / "tasks" / "docs.md",
        f"---\nmodel: scripted:{script}\non:\n  on: files\n  paths: ['docs/**/*.md']\n"
        "  debounce_ms: 300\n---\nIndex the docs; changed: {{ paths | join(', ') }}\n",
    )
    write(workspace / ".gitignore", "docs/drafts/\n")
    daemon = Daemon(workspace)
    try:
        time.sleep(0.5)  # the watch is set up
        for name in ("a", "b", "c"):
            write(workspace / "docs" / f"{name}.md", f"# {name}\n")
        write(workspace / "docs" / "drafts" / "x.md", "ignored\n")
        write(workspace / "notes.txt", "not watched\n")
        wait_until(lambda: run_count(workspace) == 1)
        time.sleep(3)  # the run wrote docs/index.md: its own edit must not fire again
        assert run_count(workspace) == 1
        write(workspace / "docs" / "a.md", "# a, edited\n")
        wait_until(lambda: run_count(workspace) == 2)
    finally:
        daemon.stop()
    fired = [e["data"] for e in events(workspace, "trigger:docs") if e["kind"] == "trigger.fired"]
    assert [f["paths"] for f in fired] == [["docs/a.md", "docs/b.md", "docs/c.md"], ["docs/a.md"]]
    first_task = next(
        e["data"]["text"]
        for e in events(workspace, fired[0]["started_run"])
        if e["kind"] == "user.message"
    )
    assert first_task == "Index the docs; changed: docs/a.md, docs/b.md, docs/c.md"


def test_serve_resumes_a_run_whose_process_died(workspace: Path) -> None:
    script = write_script(
        workspace.parent / "moves.yaml",
        [
            {"tool_calls": [{"name": "run_shell", "args": {"command": "echo once >> ledger.txt"}}]},
            {"finish": "survived"},
        ],
    )
    write(workspace / "task.md", f"---\nmodel: scripted:{script}\n---\nWork.\n")
    env = {k: v for k, v in os.environ.items() if k != "GM_MODEL"}
    crashed = subprocess.run(
        [sys.executable, "-m", "gm_agent", "run", "task.md"],
        cwd=workspace,
        env={**env, "GM_CRASH_AT": "job.after_effect:1"},  # SIGKILL right after the command ran
        capture_output=True,
        check=False,
    )
    assert crashed.returncode == -9, crashed.stderr
    daemon = Daemon(workspace)
    try:
        wait_until(lambda: "succeeded" in gm("status", cwd=workspace).stdout)
    finally:
        daemon.stop()
    assert (workspace / "ledger.txt").read_text() == "once\n"  # recorded, never run again


def test_run_watch_runs_the_task_again_when_its_files_change(workspace: Path) -> None:
    script = write_script(workspace.parent / "moves.yaml", [{"finish": "looked"}])
    write(
        workspace / "task.md",
        f"---\nmodel: scripted:{script}\non:\n  on: files\n  paths: ['src/*.py']\n"
        "  debounce_ms: 200\n---\nLook at the code.\n",
    )
    watching = gm_process("run", "task.md", "--watch", cwd=workspace)
    try:
        assert watching.stderr is not None
        for line in watching.stderr:
            if "watching src/*.py" in line:
                break
        time.sleep(0.5)  # the watch is set up
        write(workspace / "README.md", "not watched\n")
        write(workspace / "src" / "app.py", "print('hi')\n")
        wait_until(lambda: run_count(workspace) == 2)
    finally:
        watching.send_signal(signal.SIGINT)
        watching.communicate(timeout=30)
    assert run_count(workspace) == 2


def test_a_schedule_never_stacks_runs(workspace: Path) -> None:
    script = write_script(
        workspace.parent / "moves.yaml",
        [
            {"tool_calls": [{"name": "run_shell", "args": {"command": "sleep 2.5"}}]},
            {"finish": "slow"},
        ],
    )
    write(workspace / "tasks" / "slow.md", f"---\nmodel: scripted:{script}\n---\nBe slow.\n")
    write(
        workspace / "gm.toml",
        '[[triggers]]\nname = "often"\non = "schedule"\nevery = "1s"\ntask = "tasks/slow.md"\n',
    )
    daemon = Daemon(workspace)
    try:
        wait_until(
            lambda: any(
                e["data"].get("skipped", "") and "busy" in e["data"]["skipped"]
                for e in events(workspace, "trigger:often")
                if e["kind"] == "trigger.fired"
            )
        )
    finally:
        daemon.stop()
    fired = [e["data"] for e in events(workspace, "trigger:often") if e["kind"] == "trigger.fired"]
    assert fired[0]["started_run"] is not None
    # the second firing came a second later, while the first run still slept: skipped
    assert (fired[1]["started_run"], fired[1]["skipped"]) == (
        None,
        "busy: 1 run(s) of this trigger still going",
    )


def test_a_ping_is_ignored_and_a_missing_payload_key_renders_as_nothing(
    project: Path, daemon: Daemon
) -> None:
    ping = (PAYLOADS / "ping" / "payload.json").read_bytes()
    headers = {**github_headers(ping, "p-1"), "X-GitHub-Event": "ping"}
    answer = post(daemon, ping, headers)
    assert (answer.status_code, answer.json()) == (200, {"status": "ignored"})
    issue = (PAYLOADS / "issues" / "opened.payload.json").read_bytes()
    headers = {**github_headers(issue, "i-1"), "X-GitHub-Event": "issues"}
    started = post(daemon, issue, headers)
    assert started.status_code == 202, started.text
    run = events(project, started.json()["run_id"])
    task = next(e["data"]["text"] for e in run if e["kind"] == "user.message")
    assert task == "Review the pull request  (issues)."  # no pull_request in an issue
    assert run_count(project) == 1


def test_a_secret_in_a_webhook_payload_never_reaches_the_journal(
    project: Path, daemon: Daemon
) -> None:
    payload = json.loads((PAYLOADS / "pull_request" / "opened.payload.json").read_bytes())
    payload["pull_request"]["title"] = f"leak {SECRET}"
    body = json.dumps(payload).encode()
    started = post(daemon, body, github_headers(body, "s-1"))
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    logged = gm("log", "--json", "trigger:pr-opened", cwd=project).stdout
    logged += gm("log", "--json", run_id, cwd=project).stdout
    assert SECRET not in logged
    assert "leak [redacted: GM_WEBHOOK_SECRET]" in logged
