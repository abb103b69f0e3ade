"""The journal: an append-only SQLite file that is the single source of truth.

See ``docs/journal.md``. Nothing outside this package knows it is SQLite.
"""

from __future__ import annotations

from gm_agent.journal._checkpoints import CheckpointRecord
from gm_agent.journal._leases import DEFAULT_LEASE_S, new_owner, owner_alive
from gm_agent.journal._schema import LATEST_VERSION
from gm_agent.journal._store import BUSY_TIMEOUT_MS, Durability, Journal, RunRow

__all__ = [
    "BUSY_TIMEOUT_MS",
    "DEFAULT_LEASE_S",
    "LATEST_VERSION",
    "CheckpointRecord",
    "Durability",
    "Journal",
    "RunRow",
    "new_owner",
    "owner_alive",
]
