"""The digest chain that seals each run's events against later change.

Every event is stored with ``digest = sha256(previous digest of the same run,
then the event's columns)``. Nothing in gm_agent ever changes a stored event
(SQLite triggers refuse it), so a digest that no longer matches means the file
was changed behind gm's back (an edit, a disk fault, a bad restore);
``gm replay`` names the first such event. Events written before schema 2 have
no digest and start the chain again after them.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence

from gm_agent.events import Event

_SEP = b"\x1f"
_NONE = b"\x00"

DIGESTED_COLUMNS = "id, run_id, kind, v, at, source, causation_id, data"
"""The columns a digest covers, in order (``seq`` is given by SQLite on insert)."""


def event_digest(previous: str, columns: Sequence[object]) -> str:
    """Hex sha256 chaining ``previous`` (``""`` for a run's first event) and ``columns``.

    Args:
        previous: the digest of the run's previous event.
        columns: the event's :data:`DIGESTED_COLUMNS` values as stored.
    """
    digest = hashlib.sha256(previous.encode())
    for value in columns:
        digest.update(_SEP)
        digest.update(_NONE if value is None else str(value).encode())
    return digest.hexdigest()


def event_columns(event: Event, data: str) -> tuple[object, ...]:
    """``event``'s :data:`DIGESTED_COLUMNS` values, ``data`` being its stored payload text."""
    return (
        event.id,
        event.run_id,
        event.kind,
        event.v,
        event.at,
        event.source,
        event.causation_id,
        data,
    )


def chain_head(conn: sqlite3.Connection, run_id: str) -> str:
    """The digest of ``run_id``'s newest event (``""`` when it has none, or none with a digest)."""
    row = conn.execute(
        "SELECT digest FROM events WHERE run_id = ? ORDER BY seq DESC LIMIT 1", (run_id,)
    ).fetchone()
    return str(row[0] or "") if row else ""


def first_broken_link(conn: sqlite3.Connection, run_id: str) -> int | None:
    """The seq of ``run_id``'s first event whose digest does not match, or ``None``."""
    previous = ""
    cursor = conn.execute(
        f"SELECT seq, {DIGESTED_COLUMNS}, digest FROM events WHERE run_id = ? ORDER BY seq",
        (run_id,),
    )
    try:
        while rows := cursor.fetchmany(2000):
            for row in rows:
                seq, *columns, stored = tuple(row)
                if stored is None:  # written before schema 2: nothing to check
                    previous = ""
                    continue
                if event_digest(previous, columns) != stored:
                    return int(seq)
                previous = str(stored)
    finally:
        cursor.close()
    return None
