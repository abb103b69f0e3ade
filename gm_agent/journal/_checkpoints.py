"""The ``checkpoints`` table: a run's folded state at a safe point.

The journal stores a checkpoint's ``state`` text as given; what it holds (and
how it shares unchanged parts with earlier checkpoints through blobs) is the
kernel's business. A checkpoint row is written in the same transaction as the
``checkpoint.saved`` event that announces it.
"""

from __future__ import annotations

import sqlite3

from pydantic import BaseModel, ConfigDict

from gm_agent.journal._thread import AsyncConnection

_LAST_SEQ = 2**62  # SQLite integers are 64-bit; no seq comes near


class CheckpointRecord(BaseModel):
    """One checkpoint: ``state`` (text) is the run's state after event ``upto_seq``.

    ``state_hash`` is the hex sha256 of that state's canonical JSON.
    """

    model_config = ConfigDict(frozen=True)

    run_id: str
    upto_seq: int
    state: str
    state_hash: str


def insert_checkpoint(conn: sqlite3.Connection, record: CheckpointRecord) -> None:
    """Store ``record`` (a repeated ``(run_id, upto_seq)`` is ignored: same state, same row)."""
    conn.execute(
        "INSERT OR IGNORE INTO checkpoints (run_id, upto_seq, state, state_hash) "
        "VALUES (?, ?, ?, ?)",
        (record.run_id, record.upto_seq, record.state, record.state_hash),
    )


async def latest_checkpoint(
    conn: AsyncConnection, run_id: str, at_most_seq: int | None
) -> CheckpointRecord | None:
    """``run_id``'s newest checkpoint, or its newest at or before ``at_most_seq``."""
    rows = list(
        await conn.execute_fetchall(
            "SELECT upto_seq, state, state_hash FROM checkpoints "
            "WHERE run_id = ? AND upto_seq <= ? ORDER BY upto_seq DESC LIMIT 1",
            (run_id, at_most_seq if at_most_seq is not None else _LAST_SEQ),
        )
    )
    if not rows:
        return None
    upto_seq, state, state_hash = tuple(rows[0])
    return CheckpointRecord(
        run_id=run_id, upto_seq=int(upto_seq), state=str(state), state_hash=str(state_hash)
    )


async def checkpoint_hashes(conn: AsyncConnection, run_id: str) -> dict[int, str]:
    """``{upto_seq: state_hash}`` for each of ``run_id``'s checkpoints."""
    rows = await conn.execute_fetchall(
        "SELECT upto_seq, state_hash FROM checkpoints WHERE run_id = ? ORDER BY upto_seq",
        (run_id,),
    )
    return {int(r[0]): str(r[1]) for r in rows}
