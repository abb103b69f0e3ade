"""The peers' own virtual environment, and running a peer workload in it.

DBOS and LangGraph are installed into ``bench/.venv-peers`` (git-ignored), never
into gm_agent's environment; their workloads run as subprocesses of that
environment's interpreter and answer with one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["PEER_REQUIREMENTS", "VENV", "install_peers", "peer_python", "peer_versions", "run_peer"]

BENCH = Path(__file__).resolve().parent
VENV = BENCH / ".venv-peers"
PEERS = BENCH / "_peers"
PEER_REQUIREMENTS = ("dbos>=3.4", "langgraph>=1.2", "langgraph-checkpoint-sqlite>=3.1")
"""What the peers' environment gets (the same pins as pyproject's ``bench`` extra)."""


def peer_python(venv: Path = VENV) -> Path | None:
    """The peers' interpreter, or ``None`` when the environment is not installed."""
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import dbos, langgraph.checkpoint.sqlite"],
        capture_output=True,
        check=False,
    )
    return python if probe.returncode == 0 else None


def install_peers(venv: Path = VENV) -> Path:
    """Create ``venv`` with ``python -m venv`` (if missing) and pip-install the peers.

    Returns:
        The environment's interpreter.

    Raises:
        subprocess.CalledProcessError: venv creation or pip failed (its output shows).
    """
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            str(python),
            *("-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
            *PEER_REQUIREMENTS,
        ],
        check=True,
    )
    return python


def peer_versions(python: Path) -> dict[str, str]:
    """Installed versions of the peers' packages, as their interpreter reports them."""
    script = (
        "import json, sqlite3, importlib.metadata as m\n"
        "names = ['dbos', 'langgraph', 'langgraph-checkpoint-sqlite', 'SQLAlchemy']\n"
        "print(json.dumps({**{n: m.version(n) for n in names},"
        " 'peers sqlite': sqlite3.sqlite_version}))"
    )
    out = subprocess.run([str(python), "-c", script], capture_output=True, check=True, text=True)
    return dict(json.loads(out.stdout))


def run_peer(python: Path, script: str, args: list[str]) -> dict[str, Any]:
    """Run ``bench/_peers/SCRIPT ARGS`` with the peers' interpreter; its JSON answer.

    Raises:
        RuntimeError: the script failed or printed no JSON (its stderr is quoted).
    """
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    done = subprocess.run(
        [str(python), str(PEERS / script), *args],
        capture_output=True,
        check=False,
        text=True,
        env=env,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{script} {' '.join(args)} failed: {done.stderr[-2000:]}")
    return dict(json.loads(lines[-1]))
