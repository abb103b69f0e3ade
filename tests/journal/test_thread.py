"""The journal's SQLite thread: calls run there in order, errors come back, a
transaction in one call is never cut short."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import anyio
import pytest

from gm_agent.clock import FakeClock
from gm_agent.events import RunCreated, UserMessage, new_event
from gm_agent.journal import Journal
from gm_agent.journal._thread import AsyncConnection

pytestmark = pytest.mark.anyio


async def test_calls_run_on_one_other_thread_in_the_order_made(tmp_path: Path) -> None:
    conn = await AsyncConnection.open(tmp_path / "t.db")
    try:
        await conn.execute("CREATE TABLE t (n INTEGER)")
        threads: set[int] = set()

        def insert(n: int):
            def work(db: sqlite3.Connection) -> None:
                threads.add(threading.get_ident())
                db.execute("INSERT INTO t VALUES (?)", (n,))

            return work

        async with anyio.create_task_group() as tg:
            for n in range(20):
                tg.start_soon(conn.run, insert(n))
        assert await conn.execute_fetchall("SELECT n FROM t") == [(n,) for n in range(20)]
        assert len(threads) == 1 and threading.get_ident() not in threads
    finally:
        await conn.close()


async def test_an_error_is_raised_to_the_caller_and_the_thread_goes_on(tmp_path: Path) -> None:
    conn = await AsyncConnection.open(tmp_path / "t.db")
    try:
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            await conn.execute_fetchall("SELECT * FROM missing")
        assert await conn.execute("CREATE TABLE t (n INTEGER)") == -1
        assert await conn.execute("INSERT INTO t VALUES (1), (2)") == 2
    finally:
        await conn.close()
    await conn.close()  # closing twice is harmless
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        await conn.execute("SELECT 1")


async def test_a_file_that_cannot_be_opened_leaves_no_thread(tmp_path: Path) -> None:
    before = threading.active_count()
    with pytest.raises(sqlite3.OperationalError):
        await AsyncConnection.open(tmp_path / "no-such-dir" / "t.db")
    for _ in range(100):
        if threading.active_count() == before:
            break
        await anyio.sleep(0.01)
    assert threading.active_count() == before


async def test_an_append_whose_caller_is_cancelled_is_committed_whole(tmp_path: Path) -> None:
    clock = FakeClock()
    events = [
        new_event(
            clock,
            "R",
            "kernel",
            RunCreated(task="t", model="scripted:x", max_steps=1, workspace="/w"),
        ),
        *(new_event(clock, "R", "user", UserMessage(text=f"m{n}")) for n in range(50)),
    ]
    async with await Journal.open(tmp_path / "j.db") as journal:
        with anyio.CancelScope() as scope:
            scope.cancel()  # cancelled before the commit could even start to be awaited
            await journal.append(events)
        assert scope.cancelled_caught
        stored = await journal.read("R")
    assert [e.id for e in stored] == [e.id for e in events]  # all of it, in order
