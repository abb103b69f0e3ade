"""Detached ``gm`` processes the TUI starts (run, resume, fork), and their reaping.

A run the TUI starts must outlive it, so each child gets a session of its own
(``start_new_session``: closing the terminal or the TUI signals nothing to it)
and writes its output to a log file of its own under ``.gm/logs/``. While the
TUI is open it polls its children (:meth:`Children.reap`), which collects their
exit status (no zombies) and reports those that failed, with their log's last
line, so a refused ``gm fork --at`` is seen at once and not found later in a file.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gm_agent.settings import GM_DIR

__all__ = ["Child", "Children"]

QUIET_EXITS = (0, 1, 3, 130)
"""Exit codes that need no notice: the journal already shows succeeded (0),
failed (1), waiting for a human (3) and interrupted (130); see ``gm run --help``.
An exit 1 that left a Python traceback in the log is a crash, and is reported."""


@dataclass(frozen=True)
class Child:
    """A detached ``gm`` process: what it does (``gm resume RUN``), and its log."""

    what: str
    process: subprocess.Popen[bytes]
    log: Path

    def gist(self, limit: int = 300) -> str:
        """What the child last said, at most ``limit`` characters: its last ``gm:``
        line (gm's own messages, errors included), else its last non-empty line."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        lines = [line for line in text.splitlines() if line.strip()]
        said = [line for line in lines if line.startswith("gm: ")]
        return (said or lines or [""])[-1][-limit:]

    def crashed(self) -> bool:
        """Whether its log holds a Python traceback (an exit 1 that is no run's end)."""
        try:
            return "Traceback (most recent call last)" in self.log.read_text(errors="replace")
        except OSError:
            return False

    def noteworthy(self) -> bool:
        """Whether it ended in a way the journal does not show: an exit code not
        in :data:`QUIET_EXITS`, or a crash."""
        code = self.process.returncode
        return code is not None and (code not in QUIET_EXITS or (code == 1 and self.crashed()))


class Children:
    """The ``gm`` processes one TUI started in ``workspace``, with ``environ``.

    Args:
        workspace: the project directory (``gm -C``), where ``.gm/logs/`` is.
        environ: the children's environment (the TUI's: settings and API keys).
    """

    def __init__(self, workspace: Path, environ: Mapping[str, str]) -> None:
        self.workspace = workspace
        self.environ = dict(environ)
        self.running: list[Child] = []

    def start(self, args: list[str], name: str) -> Child:
        """Start ``gm ARGS`` detached, its output to ``.gm/logs/NAME.log``.

        ``name`` must be unique (callers put a fresh ULID in it), so two runs of
        one task never share a log.

        Raises:
            OSError: the log or the process could not be created.
        """
        logs = self.workspace / GM_DIR / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "gm_agent", "-C", str(self.workspace), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,  # not the TUI's: closing it leaves the run going
                env=self.environ,
            )
        child = Child("gm " + " ".join(args[:2]), process, log)
        self.running.append(child)
        return child

    def reap(self) -> list[Child]:
        """Collect the children that exited; those that failed in a way the journal
        does not show (:meth:`Child.noteworthy`), for the caller to report."""
        ended = [c for c in self.running if c.process.poll() is not None]
        self.running = [c for c in self.running if c not in ended]
        return [c for c in ended if c.noteworthy()]
