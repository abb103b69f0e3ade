"""SQLite plumbing shared by the journal's modules: transactions, one-row queries,
and the translation of driver errors into gm_agent's error tree."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio

from gm_agent.errors import JournalCorrupt, JournalError
from gm_agent.journal._thread import AsyncConnection

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000
"""How long a writer waits for another process's write transaction, in ms."""

_CORRUPT_CODES = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}


def translate(path: Path, exc: sqlite3.Error) -> JournalError:
    """Turn a driver error into our error tree, with what to do about it."""
    name = getattr(exc, "sqlite_errorname", "")
    if name in _CORRUPT_CODES:
        return JournalCorrupt(
            f"{str(path)!r} is not a readable gm journal ({exc}); it was not modified. "
            "Move it aside to start a new journal, or restore it from a backup"
        )
    if name == "SQLITE_FULL":
        return JournalError(
            f"the disk holding {str(path)!r} is full ({exc}); free some space and retry. "
            "Everything committed before this is kept"
        )
    if name == "SQLITE_BUSY":
        return JournalError(
            f"{str(path)!r} stayed locked by another process for {BUSY_TIMEOUT_MS} ms; retry"
        )
    return JournalError(f"journal {str(path)!r}: {exc}")


def _roll_back(conn: sqlite3.Connection) -> None:
    """ROLLBACK if SQLite has not rolled back already; its own failure is ignored."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def transact(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """``work(conn)`` between ``BEGIN IMMEDIATE`` and ``COMMIT``, on the connection's
    thread (give it to :meth:`AsyncConnection.run`: the whole transaction is then
    one round trip). On any error it is rolled back, as :func:`transaction` does."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work(conn)
        conn.execute("COMMIT")
    except BaseException:
        _roll_back(conn)
        raise
    return result


@asynccontextmanager
async def transaction(conn: AsyncConnection) -> AsyncGenerator[None, None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; on any error, roll back if SQLite has not already.

    SQLite rolls back by itself on some errors (SQLITE_FULL among them); a second
    ROLLBACK would then fail and hide the real error, so it is only sent while a
    transaction is open, and its own failure is ignored. A caller cancelled while
    its BEGIN waits for the lock leaves no transaction open: the rollback is
    queued after the BEGIN, shielded.
    """
    try:  # BEGIN inside: a BEGIN whose caller was cancelled still runs, then the rollback
        await conn.execute("BEGIN IMMEDIATE")
        yield
        await conn.execute("COMMIT")
    except BaseException:
        with anyio.CancelScope(shield=True):  # queued after it, on the connection's thread
            await conn.run(_roll_back)
        raise


async def fetchone_or_none(
    conn: AsyncConnection, sql: str, params: Sequence[Any] = ()
) -> tuple[Any, ...] | None:
    rows = await conn.execute_fetchall(sql, params)
    return rows[0] if rows else None


async def fetchone(conn: AsyncConnection, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...]:
    row = await fetchone_or_none(conn, sql, params)
    assert row is not None, sql
    return row
