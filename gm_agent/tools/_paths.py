"""Resolving a tool's path argument inside the workspace.

A path is checked after every symlink and ``..`` is resolved (``os.path.realpath``)
and compared component by component (``Path.is_relative_to``), never as a
string prefix: ``/work/app-secrets`` is not inside ``/work/app``.
"""

from __future__ import annotations

import os
from pathlib import Path

from gm_agent.errors import PathOutsideWorkspace

__all__ = ["PROTECTED_DIRS", "resolve_in_workspace"]

PROTECTED_DIRS = frozenset({".gm", ".git"})
"""Top-level directories no tool may write: gm's own state and git's."""


def resolve_in_workspace(workspace: Path, path: str, *, write: bool = False) -> Path:
    """The real absolute path of ``path`` if it lies inside ``workspace``.

    Args:
        workspace: the workspace root (need not be resolved already).
        path: what the model gave: relative to the workspace, or absolute.
        write: also refuse the workspace root itself and ``.gm/`` / ``.git/``.

    Raises:
        PathOutsideWorkspace: the path is empty, escapes the workspace (by
            ``..``, by being absolute elsewhere, or through a symlink), or is a
            protected directory for a write. The message is for the model.
    """
    if not path or "\x00" in path:
        raise PathOutsideWorkspace(f"invalid path {path!r}")
    root = Path(os.path.realpath(workspace))
    real = Path(os.path.realpath(root / path))  # an absolute `path` replaces root
    if not real.is_relative_to(root):
        raise PathOutsideWorkspace(
            f"{path!r} is outside the workspace (it resolves to {str(real)!r}); "
            "use a path inside the project directory"
        )
    relative = real.relative_to(root)
    if write:
        if not relative.parts:
            raise PathOutsideWorkspace(f"{path!r} is the workspace itself, not a file")
        # Any level (a nested repository's .git too), any case (case-insensitive disks).
        protected = [part for part in relative.parts if part.lower() in PROTECTED_DIRS]
        if protected:
            raise PathOutsideWorkspace(
                f"{path!r} is inside {protected[0]}/, which tools may not change"
            )
    return real
