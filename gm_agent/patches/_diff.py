"""Rendering file changes as unified diffs (or "Binary files ... differ")."""

from __future__ import annotations

import difflib

__all__ = ["count_lines", "is_binary", "render_diff"]


def is_binary(data: bytes | None) -> bool:
    """Whether ``data`` looks binary: a NUL byte in the first 8 KiB, or not UTF-8 (git's rule, roughly)."""
    if not data:
        return False
    if b"\0" in data[:8192]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def render_diff(
    old_path: str | None,
    new_path: str | None,
    before: bytes | None,
    after: bytes | None,
    before_mode: int | None = None,
    after_mode: int | None = None,
) -> str:
    """A git-style unified diff of one file (``None`` path or content: absent).

    Returns:
        The diff text ending in a newline; mode changes and renames get header
        lines; binary content says so instead of listing lines.
    """
    a = f"a/{old_path}" if old_path else "/dev/null"
    b = f"b/{new_path}" if new_path else "/dev/null"
    header = [f"diff --gm {a} {b}\n"]
    if before_mode is not None and after_mode is not None and before_mode != after_mode:
        header += [f"old mode {before_mode:o}\n", f"new mode {after_mode:o}\n"]
    if old_path and new_path and old_path != new_path:
        header += [f"rename from {old_path}\n", f"rename to {new_path}\n"]
    if before == after:
        return "".join(header)
    if is_binary(before) or is_binary(after):
        return "".join([*header, f"Binary files {a} and {b} differ\n"])
    old_lines = (before or b"").decode("utf-8").splitlines(keepends=True)
    new_lines = (after or b"").decode("utf-8").splitlines(keepends=True)
    body = [
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
        for line in difflib.unified_diff(old_lines, new_lines, a, b)
    ]
    return "".join([*header, *body])


def count_lines(diff: str) -> tuple[int, int]:
    """Added and removed lines in a unified diff."""
    added = sum(
        1 for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")
    )
    removed = sum(
        1 for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")
    )
    return added, removed
