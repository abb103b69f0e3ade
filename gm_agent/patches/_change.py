"""A planned file change with its full contents: describe it, invert it, rebuild it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from gm_agent.errors import PatchError
from gm_agent.events import FileChange, FileOp

__all__ = ["DEFAULT_FILE_MODE", "PlannedChange", "sha256_hex"]

DEFAULT_FILE_MODE = 0o644
"""Permission bits of a file a tool creates."""


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class PlannedChange:
    """One file's change with both contents, ready to apply or to invert.

    Attributes:
        path: POSIX path relative to the workspace, after the change.
        op: ``create``, ``modify``, ``delete``, ``rename`` or ``chmod``.
        before: content before (``None``: the file did not exist).
        after: content after (``None``: the file does not exist any more).
        before_mode: permission bits before (``None`` for a create).
        after_mode: permission bits after (``None`` for a delete).
        old_path: for a rename, where the file was.
    """

    path: str
    op: FileOp
    before: bytes | None
    after: bytes | None
    before_mode: int | None
    after_mode: int | None
    old_path: str | None = None

    @property
    def source_path(self) -> str:
        """Where the file is before the change (``old_path`` for a rename)."""
        return self.old_path if self.op == "rename" and self.old_path else self.path

    def describe(self) -> FileChange:
        """The journal's record of this change (hashes and modes, not contents)."""
        return FileChange(
            path=self.path,
            op=self.op,
            before_sha256=None if self.before is None else sha256_hex(self.before),
            after_sha256=None if self.after is None else sha256_hex(self.after),
            mode=self.after_mode,
            size=None if self.after is None else len(self.after),
            before_mode=self.before_mode,
            old_path=self.old_path,
        )

    def invert(self) -> PlannedChange:
        """The change that undoes this one exactly (content, mode and place)."""
        op: FileOp = {"create": "delete", "delete": "create"}.get(self.op, self.op)  # type: ignore[assignment]
        return PlannedChange(
            path=self.old_path if self.op == "rename" and self.old_path else self.path,
            op=op,
            before=self.after,
            after=self.before,
            before_mode=self.after_mode,
            after_mode=self.before_mode,
            old_path=self.path if self.op == "rename" else None,
        )

    @classmethod
    def from_record(cls, change: FileChange, blobs: Mapping[str, bytes]) -> PlannedChange:
        """Rebuild a change from its journal record and the blobs it names.

        Raises:
            PatchError: a blob the record names is missing.
        """

        def content(sha: str | None) -> bytes | None:
            if sha is None:
                return None
            if sha not in blobs:
                raise PatchError(f"the journal has no content {sha[:12]} for {change.path!r}")
            return blobs[sha]

        return cls(
            path=change.path,
            op=change.op,
            before=content(change.before_sha256),
            after=content(change.after_sha256),
            before_mode=change.before_mode,
            after_mode=change.mode,
            old_path=change.old_path,
        )
