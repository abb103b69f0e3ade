"""The Textual TUI: ``gm tui`` and ``gm run --tui``; see :mod:`gm_agent.tui.app`."""

from gm_agent.tui.app import GmApp

__all__ = ["GmApp"]
