"""The shell sandbox, with real commands under real bubblewrap: what a command can
and cannot reach."""

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

pytestmark = [pytest.mark.anyio, pytest.mark.sandbox]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A workspace with a git repository and a .gm directory in it."""
    root = tmp_path / "project"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / ".gm").mkdir()
    (root / ".gm" / "journal.db").write_bytes(b"journal")
    return root


async def sandboxed(
    command: str, workspace: Path, env: dict[str, str] | None = None, **options: object
) -> tuple[int | None, str]:
    sandbox = probe_sandbox(workspace, **options)  # type: ignore[arg-type]
    assert sandbox.backend == "bubblewrap", sandbox.detail
    result = await run_shell(
        command,
        workspace,
        timeout_s=30,
        env=scrub_env(env if env is not None else dict(os.environ)),
        output_cap_bytes=10_000,
        sandbox=sandbox,
    )
    return result.exit_code, result.output


async def test_a_command_writes_in_the_workspace_and_nowhere_else(
    project: Path, tmp_path: Path
) -> None:
    outside = Path(__file__).with_name(f"outside-{os.getpid()}.txt")  # beside this test
    code, output = await sandboxed(f"echo in > inside.txt && echo out > {outside}", project)
    assert code != 0 and "Read-only file system" in output
    assert (project / "inside.txt").read_text() == "in\n"
    assert not outside.exists()
    # The workspace's neighbours under /tmp are in the command's private /tmp only.
    neighbour = tmp_path / "neighbour.txt"
    code, _ = await sandboxed(f"echo out > {neighbour}", project)
    assert not neighbour.exists()


@pytest.mark.parametrize("target", [".git/config", ".git/hooks/pre-commit", ".gm/journal.db"])
async def test_the_repository_and_the_journal_are_read_only(project: Path, target: str) -> None:
    before = (project / target).read_bytes() if (project / target).exists() else None
    code, output = await sandboxed(f"echo evil > {target}", project)
    assert code != 0 and "Read-only file system" in output
    after = (project / target).read_bytes() if (project / target).exists() else None
    assert after == before


async def test_tmp_is_private_to_the_command(project: Path) -> None:
    marker = Path("/tmp") / f"gm-sandbox-test-{os.getpid()}"
    code, _ = await sandboxed(f"echo x > {marker} && cat {marker}", project)
    assert code == 0
    assert not marker.exists()


async def test_no_network_not_even_loopback(project: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3)"
        code, output = await sandboxed(f'{sys.executable} -c "{probe}"', project)
        assert code != 0 and ("Network is unreachable" in output or "refused" in output)
        allowed, _ = await sandboxed(f'{sys.executable} -c "{probe}"', project, network=True)
        assert allowed == 0  # with [sandbox] network = true, the same connection works


async def test_the_environment_holds_no_planted_secret(project: Path) -> None:
    env = {"PATH": os.environ["PATH"], "MY_SERVICE_API_KEY": "sk-planted-1234", "HOME": "/root"}
    code, output = await sandboxed("env", project, env=env)
    assert code == 0 and "PATH=" in output
    assert "sk-planted-1234" not in output


async def test_a_file_over_the_size_limit_cannot_be_written(project: Path) -> None:
    code, output = await sandboxed(
        "head -c 3000000 /dev/zero > big.bin", project, max_file_bytes=1 << 20
    )
    assert code != 0
    assert (project / "big.bin").stat().st_size == 1 << 20  # cut at the limit
    assert "File size limit exceeded" in output or code in (153, -25)


async def test_commands_cannot_see_or_signal_gms_processes(project: Path) -> None:
    code, output = await sandboxed(f"kill -0 {os.getpid()} && echo reached", project)
    assert code != 0 and "reached" not in output


def test_without_bubblewrap_the_probe_says_so_plainly(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    sandbox = probe_sandbox(project)
    assert sandbox == ShellSandbox("none", detail=sandbox.detail)
    assert "bubblewrap is not installed" in sandbox.detail
    assert probe_sandbox(project, wanted="none").detail.startswith("turned off in gm.toml")


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
