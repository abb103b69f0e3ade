"""The shell sandbox, with real commands under real bubblewrap and real Landlock:
what a command can and cannot reach. Each confinement test runs under both."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gm_agent.jobs import ShellSandbox, probe_sandbox, run_shell, scrub_env
from tests.conftest import gm
from tests.helpers import write_script, write_task

pytestmark = [pytest.mark.anyio]

DENIED = ("Read-only file system", "Permission denied")
"""What bubblewrap (a read-only mount) and Landlock (EACCES) say to a write."""


@pytest.fixture(
    params=[
        pytest.param("bubblewrap", marks=pytest.mark.sandbox),
        pytest.param("landlock", marks=pytest.mark.landlock),
    ]
)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A workspace with a git repository, a .gm directory and a src directory in it."""
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / ".gm").mkdir()
    (root / ".gm" / "journal.db").write_bytes(b"journal")
    return root


async def sandboxed(
    command: str,
    workspace: Path,
    backend: str,
    env: dict[str, str] | None = None,
    **options: object,
) -> tuple[int | None, str]:
    sandbox = probe_sandbox(workspace, wanted=backend, **options)  # type: ignore[arg-type]
    assert sandbox.backend == backend, sandbox.detail
    result = await run_shell(
        command,
        workspace,
        timeout_s=30,
        env=scrub_env(env if env is not None else dict(os.environ)),
        output_cap_bytes=10_000,
        sandbox=sandbox,
    )
    return result.exit_code, result.output


def refused(code: int | None, output: str) -> bool:
    return code != 0 and any(message in output for message in DENIED)


async def test_a_command_writes_in_the_workspace_and_nowhere_else(
    project: Path, tmp_path: Path, backend: str
) -> None:
    (project / "README").write_text("")  # Landlock: a command cannot add top-level entries
    outside = Path(__file__).with_name(f"outside-{os.getpid()}.txt")  # beside this test
    command = f"echo in > README && echo in > src/new.py && echo out > {outside}"
    code, output = await sandboxed(command, project, backend)
    assert refused(code, output), output
    assert (project / "README").read_text() == "in\n"
    assert (project / "src" / "new.py").read_text() == "in\n"
    assert not outside.exists()
    # The workspace's neighbours under /tmp cannot be reached either.
    neighbour = tmp_path / "neighbour.txt"
    code, _ = await sandboxed(f"echo out > {neighbour}", project, backend)
    assert not neighbour.exists()


@pytest.mark.parametrize(
    "target", [".git/config", ".git/hooks/pre-commit", ".git/new-file", ".gm/journal.db"]
)
async def test_the_repository_and_the_journal_are_read_only(
    project: Path, target: str, backend: str
) -> None:
    before = (project / target).read_bytes() if (project / target).exists() else None
    code, output = await sandboxed(f"echo evil > {target}", project, backend)
    assert refused(code, output), output
    after = (project / target).read_bytes() if (project / target).exists() else None
    assert after == before


async def test_symlinks_in_the_workspace_do_not_open_a_way_out(
    project: Path, tmp_path: Path, backend: str
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (project / "out").symlink_to(elsewhere)
    code, output = await sandboxed("echo evil > out/planted", project, backend)
    assert refused(code, output), output
    assert not (elsewhere / "planted").exists()


async def test_temporary_files_are_private_to_the_command(project: Path, backend: str) -> None:
    marker = Path("/tmp") / f"gm-sandbox-test-{os.getpid()}"
    if backend == "bubblewrap":  # a private tmpfs on /tmp
        code, _ = await sandboxed(f"echo x > {marker} && cat {marker}", project, backend)
    else:  # the workspace is under /tmp: the command gets the project's .gm/tmp instead
        own = os.path.realpath(project / ".gm" / "tmp")
        command = f'[ "$TMPDIR" = {own} ] && echo x > "$TMPDIR/f" && ! echo x > {marker}'
        code, _ = await sandboxed(command, project, backend)
    assert code == 0
    assert not marker.exists()


async def test_no_network_not_even_loopback(project: Path, backend: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3)"
        code, output = await sandboxed(f'{sys.executable} -c "{probe}"', project, backend)
        assert code != 0
        assert any(m in output for m in ("Network is unreachable", "refused", "Permission denied"))
        allowed, output = await sandboxed(
            f'{sys.executable} -c "{probe}"', project, backend, network=True
        )
        assert allowed == 0, output  # with network allowed, the same connection works


async def test_the_environment_holds_no_planted_secret(project: Path, backend: str) -> None:
    env = {"PATH": os.environ["PATH"], "MY_SERVICE_API_KEY": "sk-planted-1234", "HOME": "/root"}
    code, output = await sandboxed("env", project, backend, env=env)
    assert code == 0 and "PATH=" in output
    assert "sk-planted-1234" not in output


async def test_a_file_over_the_size_limit_cannot_be_written(project: Path, backend: str) -> None:
    code, output = await sandboxed(
        "head -c 3000000 /dev/zero > src/big.bin", project, backend, max_file_bytes=1 << 20
    )
    assert code != 0
    assert (project / "src" / "big.bin").stat().st_size == 1 << 20  # cut at the limit
    assert "File size limit exceeded" in output or code in (153, -25)


async def test_commands_cannot_see_or_signal_gms_processes(project: Path, backend: str) -> None:
    code, output = await sandboxed(f"kill -0 {os.getpid()} && echo reached", project, backend)
    assert code != 0 and "reached" not in output


@pytest.mark.landlock
def test_without_bubblewrap_the_probe_falls_back_to_landlock(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    sandbox = probe_sandbox(project)
    assert sandbox.backend == "landlock" and sandbox.effective
    assert "bubblewrap is not installed" in sandbox.detail


def test_where_nothing_confines_the_probe_says_so_plainly(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(sys, "executable", "/nonexistent/python3")  # the Landlock helper's
    sandbox = probe_sandbox(project)
    assert sandbox == ShellSandbox("none", detail=sandbox.detail)
    assert "bubblewrap is not installed" in sandbox.detail
    assert "Landlock is not installed" in sandbox.detail
    assert probe_sandbox(project, wanted="none").detail.startswith("turned off in gm.toml")


def test_unconfined_every_shell_call_needs_approval(workspace: Path) -> None:
    (workspace / "gm.toml").write_text('[sandbox]\nbackend = "none"\n')
    write_script(
        workspace / "moves.yaml",
        [{"tool_calls": [{"name": "run_shell", "args": {"command": "true"}}]}, {"finish": "ok"}],
    )
    task = write_task(workspace / "task.md", "Run true.", model="scripted:moves.yaml")
    result = gm("run", str(task), cwd=workspace)
    assert result.returncode == 3, result.stderr
    assert "needs approval of run_shell" in result.stderr
    log = [
        json.loads(line) for line in gm("log", "last", "--json", cwd=workspace).stdout.splitlines()
    ]
    (requested,) = [e["data"] for e in log if e["kind"] == "approval.requested"]
    assert (requested["risk"], requested["rule"]) == ("dangerous", "run_shell:risk:dangerous")


def test_a_run_journals_its_sandbox_and_runs_commands_inside_it(workspace: Path) -> None:
    write_script(
        workspace / "moves.yaml",
        [
            {"tool_calls": [{"name": "run_shell", "args": {"command": "touch /etc/gm-was-here"}}]},
            {"finish": "tried"},
        ],
    )
    task = write_task(workspace / "task.md", "Try.", model="scripted:moves.yaml")
    result = gm("run", str(task), "--json", cwd=workspace)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    (probed,) = [e["data"] for e in events if e["kind"] == "sandbox.probed"]
    assert probed["backend"] == "bubblewrap" and probed["network"] is False
    (shell,) = [
        e["data"]
        for e in events
        if e["kind"] == "tool.returned" and e["data"]["name"] == "run_shell"
    ]
    assert not shell["ok"] and "Read-only file system" in shell["output"]
    assert not Path("/etc/gm-was-here").exists()
    status = gm("status", "last", cwd=workspace).stdout
    assert "sandbox  bubblewrap" in status


def test_a_required_sandbox_that_cannot_run_fails_the_run_clearly(workspace: Path) -> None:
    (workspace / "gm.toml").write_text('[sandbox]\nbackend = "bubblewrap"\n')
    write_script(workspace / "moves.yaml", [{"finish": "never"}])
    task = write_task(workspace / "task.md", "Try.", model="scripted:moves.yaml")
    env = {"PATH": f"{Path(sys.executable).parent}:/nonexistent"}  # python, but no bwrap
    result = gm("run", str(task), cwd=workspace, env=env)
    assert result.returncode == 1
    assert "asks for the bubblewrap sandbox, but bubblewrap is not installed" in result.stdout


@pytest.mark.landlock
def test_without_bubblewrap_a_run_is_confined_by_landlock(workspace: Path) -> None:
    write_script(
        workspace / "moves.yaml",
        [
            {
                "tool_calls": [
                    {"name": "run_shell", "args": {"command": "echo x > /etc/gm-was-here"}}
                ]
            },
            {"finish": "tried"},
        ],
    )
    task = write_task(workspace / "task.md", "Try.", model="scripted:moves.yaml")
    env = {"PATH": f"{Path(sys.executable).parent}:/nonexistent"}  # python, but no bwrap
    result = gm("run", str(task), "--json", cwd=workspace, env=env)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    (probed,) = [e["data"] for e in events if e["kind"] == "sandbox.probed"]
    assert probed["backend"] == "landlock", probed
    (shell,) = [
        e["data"]
        for e in events
        if e["kind"] == "tool.returned" and e["data"]["name"] == "run_shell"
    ]
    assert not shell["ok"] and "Permission denied" in shell["output"]
    assert not Path("/etc/gm-was-here").exists()


CONNECT = "python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3)\""


@pytest.mark.sandbox
@pytest.mark.parametrize(
    ("grant", "reaches"),
    [
        ({}, False),
        (
            {
                "policy": {
                    "rules": [
                        {
                            "tool": "run_shell",
                            "match": "python3 *",
                            "action": "allow",
                            "network": True,
                        }
                    ]
                }
            },
            True,
        ),
        (
            {
                "policy": {
                    "rules": [
                        {"tool": "run_shell", "match": "curl *", "action": "allow", "network": True}
                    ]
                }
            },
            False,
        ),
        ({"sandbox": {"network": True}}, True),
    ],
    ids=["by-default-no", "a-matching-rule", "a-rule-for-another-command", "the-task"],
)
def test_the_network_is_reachable_only_where_the_task_or_a_rule_allows_it(
    workspace: Path, grant: dict[str, object], reaches: bool
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        command = CONNECT.format(port=server.getsockname()[1])
        write_script(
            workspace / "moves.yaml",
            [
                {"tool_calls": [{"name": "run_shell", "args": {"command": command}}]},
                {"finish": "tried"},
            ],
        )
        task = write_task(workspace / "task.md", "Connect.", model="scripted:moves.yaml", **grant)
        result = gm("run", str(task), "--json", cwd=workspace)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    (shell,) = [
        e["data"]
        for e in events
        if e["kind"] == "tool.returned" and e["data"]["name"] == "run_shell"
    ]
    assert shell["ok"] is reaches, shell["output"]
    (intent,) = [
        e["data"] for e in events if e["kind"] == "job.intent" and e["data"]["kind"] == "shell"
    ]
    assert intent["args"].get("network", False) is (reaches and "policy" in grant)


def test_a_crowded_tmp_still_shows_the_workspace_to_bubblewrap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gm_agent.jobs import sandbox

    monkeypatch.setattr(sandbox, "_MAX_TMP_ENTRIES", 1)
    for elsewhere in ("PWD", "PATH"):  # nothing else this process needs is under /tmp
        monkeypatch.setenv(elsewhere, "/usr/bin")
    monkeypatch.setattr(sandbox.sys, "prefix", "/usr")
    monkeypatch.setattr(sandbox.sys, "executable", "/usr/bin/python3")
    workspace = tmp_path / "project"
    top = str(workspace).split("/")[2]
    bound = sandbox.bubblewrap_prefix(workspace, network=False)
    assert f"/tmp/{top}" in bound  # kept even though only one entry fits
    assert bound.count("--ro-bind-try") == 1
