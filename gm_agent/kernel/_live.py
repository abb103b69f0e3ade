"""A model's reply while it streams, for watchers in other processes (the TUI).

The journal gets each reply whole (``model.response``), never token by token.
So that another process can still show the reply as it comes, the kernel
appends the streamed text to ``.gm/live/RUN.txt`` and removes the file once the
request ends (its response journaled, or the request stopped). The file is a
courtesy, never a source of truth: failing to write it is logged and the run
goes on.
"""

from __future__ import annotations

import logging
from pathlib import Path

from gm_agent.settings import GM_DIR

__all__ = ["LiveTap", "live_path"]

log = logging.getLogger("gm_agent.kernel")


def live_path(workspace: Path, run_id: str) -> Path:
    """Where run ``run_id``'s streaming reply is, while it streams."""
    return workspace / GM_DIR / "live" / f"{run_id}.txt"


class LiveTap:
    """Appends streamed reply text to :func:`live_path`; :meth:`clear` removes it."""

    def __init__(self, workspace: Path, run_id: str) -> None:
        self.path = live_path(workspace, run_id)
        self._broken = False

    def write(self, text: str) -> None:
        """Append ``text`` (UTF-8)."""
        if self._broken or not text:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as file:
                file.write(text)
        except OSError as exc:  # a full disk must not stop the run: the journal is what counts
            log.warning("cannot show the streaming reply to other processes (%s)", exc)
            self._broken = True

    def clear(self) -> None:
        """Remove the file: the request ended."""
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot remove %s (%s)", self.path, exc)
