"""The journal: an append-only SQLite file that is the single source of truth.

See ``docs/journal.md``. Nothing outside this package knows it is SQLite.
"""

from __future__ import annotations

from gm_agent.journal._schema import LATEST_VERSION
from gm_agent.journal._store import BUSY_TIMEOUT_MS, Durability, Journal, RunRow

__all__ = ["BUSY_TIMEOUT_MS", "LATEST_VERSION", "Durability", "Journal", "RunRow"]
