"""Patches: every file change the agent makes, recorded with hashes and content blobs."""

from __future__ import annotations

from gm_agent.patches._apply import (
    DEFAULT_FILE_MODE,
    PlannedChange,
    apply_changes,
    complete_patch,
    plan_write,
    sha256_hex,
)

__all__ = [
    "DEFAULT_FILE_MODE",
    "PlannedChange",
    "apply_changes",
    "complete_patch",
    "plan_write",
    "sha256_hex",
]
