"""An SQLite connection on its own thread, awaited from the event loop.

sqlite3 calls block (a commit waits for fsync), so the journal makes them on one
worker thread per connection, in the order they were asked for, and the event
loop awaits each one. Every call is a round trip between the two threads (about
30 µs on the 2-core bench machine, more than most statements take), so the
journal makes whole operations single calls: :meth:`AsyncConnection.run` runs a
function of the ``sqlite3.Connection`` on the worker thread, and a commit of
several statements (:meth:`~gm_agent.journal.Journal.append`) is one trip.

gm used aiosqlite for this before; it has the same design but no public way to
run a function on its thread (its ``Connection._execute`` is private), so a
commit was one trip per statement, seven for a one-event commit.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from queue import SimpleQueue
from typing import Any, TypeVar

__all__ = ["AsyncConnection"]

T = TypeVar("T")

_Call = tuple["asyncio.Future[Any]", Callable[[], Any]]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the awaiting task was cancelled; the call ran all the same
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _serve(calls: SimpleQueue[_Call | None]) -> None:
    """The worker thread: run each call in turn until told to stop (``None``)."""
    while (call := calls.get()) is not None:
        future, function = call
        result: Any = None
        error: BaseException | None = None
        try:
            result = function()
        except BaseException as exc:  # handed to the awaiting task, raised there
            error = exc
        try:
            future.get_loop().call_soon_threadsafe(_settle, future, result, error)
        except RuntimeError:  # the event loop is closed: no one awaits this any more
            pass


class AsyncConnection:
    """One ``sqlite3.Connection``, used only on its own worker thread.

    Open it with ``await AsyncConnection.open(path)`` and :meth:`close` it. Calls
    run one at a time in the order they were made, so a function given to
    :meth:`run` sees no other call's statements between its own: a transaction
    begun and ended in one function is not interleaved with anything.
    """

    def __init__(self, calls: SimpleQueue[_Call | None], thread: threading.Thread) -> None:
        self._calls = calls
        self._thread = thread
        self._conn: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, database: Path | str, *, uri: bool = False) -> AsyncConnection:
        """Connect to ``database`` in autocommit mode (``isolation_level=None``: the
        journal begins and commits its transactions itself).

        Raises:
            sqlite3.Error: the file cannot be opened; no thread is left behind.
        """
        calls: SimpleQueue[_Call | None] = SimpleQueue()
        thread = threading.Thread(target=_serve, args=(calls,), name="gm-journal")
        thread.start()
        connection = cls(calls, thread)
        try:
            connection._conn = await connection._call(
                lambda: sqlite3.connect(database, uri=uri, isolation_level=None)
            )
        except BaseException:
            calls.put(None)
            raise
        return connection

    def __del__(self) -> None:
        if self._conn is not None:
            warnings.warn(
                f"{self!r} was not closed; close the journal (`async with`)",
                ResourceWarning,
                stacklevel=1,
            )
            self._calls.put(None)  # the worker stops; sqlite3 closes the connection

    async def _call(self, function: Callable[[], T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._calls.put((future, function))
        return await future

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError("the journal's connection is closed")
        return self._conn

    async def run(self, function: Callable[[sqlite3.Connection], T]) -> T:
        """``function(connection)``'s result, called on the worker thread; what it
        raises is raised here. If the awaiting task is cancelled, the call still
        runs to its end (a transaction in it commits or rolls back whole)."""
        conn = self._connection()
        return await self._call(lambda: function(conn))

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed (``rowcount``)."""
        conn = self._connection()
        return await self._call(lambda: conn.execute(sql, params).rowcount)

    async def execute_fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run one query; all its rows, as tuples."""
        conn = self._connection()
        return await self._call(lambda: conn.execute(sql, params).fetchall())

    async def close(self) -> None:
        """Close the connection and stop the worker thread (idempotent)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            await self._call(conn.close)
        finally:
            self._calls.put(None)
