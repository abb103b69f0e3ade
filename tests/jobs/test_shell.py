"""Shell jobs: real processes, killed as a group."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import pytest

from gm_agent.jobs import args_digest, idempotency_key, run_shell, scrub_env

pytestmark = pytest.mark.anyio


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"  # a zombie is dead for our purposes
    except FileNotFoundError:
        return False


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs a moment after being signalled (delivery is asynchronous)."""
    for _ in range(100):
        if not _running(pid):
            return False
        time.sleep(0.02)
    return True


async def test_exit_code_and_interleaved_output(tmp_path: Path) -> None:
    result = await run_shell(
        "echo out; echo err >&2; exit 4",
        tmp_path,
        timeout_s=10,
        env=os.environ,
        output_cap_bytes=1000,
    )
    assert (result.exit_code, result.output, result.timed_out) == (4, "out\nerr\n", False)


async def test_a_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    result = await run_shell(
        "sleep 60 & echo $! > child.pid; sleep 60",
        tmp_path,
        timeout_s=0.5,
        env=os.environ,
        output_cap_bytes=1000,
    )
    assert result.timed_out
    assert not alive(int((tmp_path / "child.pid").read_text()))


async def test_a_command_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    result = await run_shell(
        "trap '' TERM; sleep 60",
        tmp_path,
        timeout_s=0.3,
        env=os.environ,
        output_cap_bytes=1000,
        grace_s=0.2,
    )
    assert result.timed_out and result.exit_code == -9


async def test_background_children_do_not_outlive_the_command(tmp_path: Path) -> None:
    result = await run_shell(
        "sleep 60 & echo $! > child.pid",
        tmp_path,
        timeout_s=10,
        env=os.environ,
        output_cap_bytes=1000,
    )
    assert result.exit_code == 0 and not result.timed_out
    assert not alive(int((tmp_path / "child.pid").read_text()))


async def test_output_keeps_head_and_tail_and_says_what_was_cut(tmp_path: Path) -> None:
    result = await run_shell(
        "echo START; head -c 100000 /dev/zero | tr '\\0' x; echo; echo END",
        tmp_path,
        timeout_s=10,
        env=os.environ,
        output_cap_bytes=200,
    )
    assert result.truncated
    assert result.output.startswith("START\n") and result.output.endswith("END\n")
    assert "bytes omitted" in result.output and len(result.output) < 300


@pytest.mark.parametrize(
    "name",
    [
        "OPENAI_API_KEY",
        "GH_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "DB_PASSWORD",
        "AZURE_OPENAI_KEY",
        "OPENAI_KEY",
        "GEMINI_KEY",
        "SSH_AUTH_SOCK",
        "DATABASE_URL",
        "NPM_AUTH",
        "SESSION_COOKIE",
        "api_key",
        "SENTRY_DSN",
        "PGPASSWORD",
        "MY_CREDENTIALS",
    ],
)
def test_secret_looking_variables_are_scrubbed(name: str) -> None:
    assert scrub_env({name: "s", "PATH": "/bin"}) == {"PATH": "/bin"}


@pytest.mark.parametrize(
    "name", ["PATH", "HOME", "PWD", "LANG", "JAVA_HOME", "GOPATH", "KEYBOARD", "TERM", "MONKEY"]
)
def test_ordinary_variables_are_kept(name: str) -> None:
    assert scrub_env({name: "v"}) == {name: "v"}


def test_idempotency_keys_are_stable_and_depend_on_the_arguments() -> None:
    digest = args_digest({"b": 1, "a": "x"})
    assert digest == args_digest({"a": "x", "b": 1})
    assert idempotency_key("R", 2, 1, digest) == idempotency_key("R", 2, 1, digest)
    assert idempotency_key("R", 2, 1, digest) != idempotency_key("R", 2, 1, args_digest({"a": "y"}))
    assert idempotency_key("R", 2, 1, digest).startswith("R/2/1/")


async def test_every_member_of_the_group_gets_the_grace_period(tmp_path: Path) -> None:
    script = (
        "trap 'sleep 0.3; echo cleaned > cleaned.txt; exit 0' TERM; while :; do sleep 0.05; done"
    )
    command = f"sh -c {script!r} & echo started; sleep 60"
    result = await run_shell(
        command, tmp_path, timeout_s=0.5, env=os.environ, output_cap_bytes=1000, grace_s=2.0
    )
    assert result.timed_out
    assert (tmp_path / "cleaned.txt").read_text() == "cleaned\n"


async def test_a_grandchild_that_leaves_the_group_does_not_leak_the_pipe(tmp_path: Path) -> None:
    result = await run_shell(
        "setsid sleep 3 & echo $! > child.pid; echo done",
        tmp_path,
        timeout_s=10,
        env=os.environ,
        output_cap_bytes=1000,
    )
    assert (result.exit_code, result.output) == (0, "done\n")
    with contextlib.suppress(ProcessLookupError):
        os.kill(int((tmp_path / "child.pid").read_text()), 9)
