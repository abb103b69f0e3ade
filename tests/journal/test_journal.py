"""The journal's contract: what any journal backend must do."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from gm_agent.clock import FakeClock
from gm_agent.errors import JournalCorrupt, JournalError, JournalSchemaTooNew, RunNotFound
from gm_agent.events import (
    JobIntent,
    JobResult,
    RunCreated,
    RunStatusChanged,
    UserMessage,
    new_event,
)
from gm_agent.journal import LATEST_VERSION, CheckpointRecord, Journal

pytestmark = pytest.mark.anyio


def created(clock: FakeClock, run_id: str = "RUN1", task: str = "do it"):
    return new_event(
        clock,
        run_id,
        "kernel",
        RunCreated(task=task, model="scripted:x", max_steps=3, workspace="/w"),
    )


def message(clock: FakeClock, text: str, run_id: str = "RUN1"):
    return new_event(clock, run_id, "user", UserMessage(text=text))


async def test_append_assigns_increasing_seqs_and_reads_back_equal_events(
    journal: Journal, clock: FakeClock
) -> None:
    events = [created(clock), message(clock, "a"), message(clock, "b")]
    committed = await journal.append(events)
    assert [e.seq for e in committed] == [1, 2, 3]
    assert await journal.read("RUN1") == committed
    assert [e.model_copy(update={"seq": None}) for e in committed] == events


async def test_appending_an_existing_event_id_is_a_no_op(
    journal: Journal, clock: FakeClock
) -> None:
    first = message(clock, "once")
    await journal.append([created(clock), first])
    again = await journal.append([first])
    assert again[0].seq == 2  # the stored event, not a new one
    assert [e.kind for e in await journal.read()] == ["run.created", "user.message"]


async def test_read_after_seq_and_by_run(journal: Journal, clock: FakeClock) -> None:
    await journal.append([created(clock, "A"), created(clock, "B"), message(clock, "to A", "A")])
    assert [e.seq for e in await journal.read(after_seq=1)] == [2, 3]
    assert [e.seq for e in await journal.read("A")] == [1, 3]
    assert [e.seq for e in await journal.read("A", after_seq=1)] == [3]
    assert await journal.read("A", after_seq=3) == []


async def test_a_batch_is_one_transaction(journal: Journal, clock: FakeClock) -> None:
    await journal.append([created(clock)])
    bad = new_event(
        clock, "RUN1", "kernel", RunCreated(task="t", model="m", max_steps=1, workspace="/")
    )
    # The second run.created for RUN1 violates the runs projection's primary key:
    # nothing of the batch may remain, not even the valid first event.
    with pytest.raises(JournalError):
        await journal.append([message(clock, "lost with the batch"), bad])
    assert [e.kind for e in await journal.read()] == ["run.created"]


async def test_events_cannot_be_updated_or_deleted(journal: Journal, clock: FakeClock) -> None:
    await journal.append([created(clock)])
    with sqlite3.connect(journal.path) as conn:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE events SET kind = 'x'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM events")


async def test_pragmas_are_wal_and_full_sync_by_default(journal: Journal) -> None:
    conn = sqlite3.connect(journal.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
    conn.close()
    rows = await journal._conn.execute_fetchall("PRAGMA synchronous")  # pyright: ignore[reportPrivateUsage]
    assert next(iter(rows))[0] == 2  # FULL


async def test_projections_follow_the_events(journal: Journal, clock: FakeClock) -> None:
    await journal.append([created(clock, "R")])
    await journal.append(
        [
            new_event(clock, "R", "kernel", RunStatusChanged.between("created", "running")),
            new_event(
                clock,
                "R",
                "job",
                JobIntent(
                    job_id="J", key="R/1/1/ab", job_kind="shell", args_digest="ab", idempotent=False
                ),
            ),
            new_event(
                clock, "R", "job", JobResult(job_id="J", key="R/1/1/ab", job_kind="shell", ok=True)
            ),
        ]
    )
    run = await journal.get_run("R")
    assert (run.status, run.last_seq) == ("running", 4)
    rows = await journal._conn.execute_fetchall("SELECT key, kind, status FROM jobs")  # pyright: ignore[reportPrivateUsage]
    assert [tuple(r) for r in rows] == [("R/1/1/ab", "shell", "succeeded")]


async def test_blobs_are_stored_once_by_hash(journal: Journal, clock: FakeClock) -> None:
    import hashlib

    await journal.append([created(clock)], blobs=[b"content", b"content"])
    assert await journal.get_blob(hashlib.sha256(b"content").hexdigest()) == b"content"
    with pytest.raises(JournalError, match="no blob"):
        await journal.get_blob("0" * 64)


async def test_resolve_run_by_id_prefix_and_last(journal: Journal, clock: FakeClock) -> None:
    await journal.append([created(clock, "01AAA")])
    clock.advance(1)
    await journal.append([created(clock, "01AAB")])
    assert await journal.resolve_run("last") == "01AAB"
    assert await journal.resolve_run("01aaa") == "01AAA"
    with pytest.raises(RunNotFound, match="several runs"):
        await journal.resolve_run("01AA")
    with pytest.raises(RunNotFound, match="no run matches"):
        await journal.resolve_run("ZZ")


async def test_follow_sees_events_committed_by_another_process(
    journal: Journal, clock: FakeClock
) -> None:
    await journal.append([created(clock)])
    writer = textwrap.dedent(
        f"""
        import anyio
        from gm_agent.clock import SystemClock
        from gm_agent.events import UserMessage, RunStatusChanged, RunFinished, new_event
        from gm_agent.journal import Journal

        async def main():
            clock = SystemClock()
            async with await Journal.open({str(journal.path)!r}) as j:
                for i in range(3):
                    await j.append([new_event(clock, "RUN1", "user", UserMessage(text=f"m{{i}}"))])
                    await anyio.sleep(0.05)
                await j.append([
                    new_event(clock, "RUN1", "kernel", RunStatusChanged.between("created", "failed")),
                    new_event(clock, "RUN1", "kernel", RunFinished(status="failed", error="x")),
                ])
        anyio.run(main)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", writer])
    seen: list[str] = []
    with anyio.fail_after(30):
        async with await Journal.open(journal.path) as reader:  # real clock: real polling
            async for event in reader.follow("RUN1"):
                data = event.data
                seen.append(data.text if isinstance(data, UserMessage) else event.kind)
    assert process.wait(timeout=30) == 0
    assert seen == ["run.created", "m0", "m1", "m2", "run.status_changed", "run.finished"]


def _bytes(path: Path) -> bytes:
    return path.read_bytes()


async def test_a_journal_from_a_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY)")
        conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    before = _bytes(path)
    with pytest.raises(JournalSchemaTooNew, match="upgrade gm_agent") as info:
        await Journal.open(path)
    assert info.value.found == LATEST_VERSION + 1
    assert _bytes(path) == before
    assert not (tmp_path / "journal.db-wal").exists()


@pytest.mark.parametrize(
    "content",
    [b"this is not a database at all" * 100, b"SQLite format 3\x00" + b"\xff" * 4000],
    ids=["text", "damaged-header"],
)
async def test_a_corrupt_file_is_refused_untouched(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "journal.db"
    path.write_bytes(content)
    with pytest.raises(JournalCorrupt, match="not modified"):
        await Journal.open(path)
    assert _bytes(path) == content


async def test_another_sqlite_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    before = _bytes(path)
    with pytest.raises(JournalCorrupt, match="not a gm journal"):
        await Journal.open(path)
    assert _bytes(path) == before


async def damage_a_page(path: Path, clock: FakeClock) -> bytes:
    async with await Journal.open(path, clock=clock) as journal:
        await journal.append([created(clock)])
        await journal.append([message(clock, "x" * 3000) for _ in range(20)])
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(path.read_bytes())
    for page in range(2, len(data) // page_size):
        data[page * page_size : page * page_size + 100] = b"\xa5" * 100
    path.write_bytes(bytes(data))
    return bytes(data)


async def test_a_damaged_page_is_refused_before_any_write(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "journal.db"
    damaged = await damage_a_page(path, clock)
    with pytest.raises(JournalCorrupt, match="quick_check"):
        await Journal.open(path, clock=clock)
    assert path.read_bytes() == damaged


async def test_a_damaged_page_met_by_a_reader_is_reported_as_corrupt(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "journal.db"
    damaged = await damage_a_page(path, clock)
    with pytest.raises(JournalCorrupt):
        async with await Journal.open(path, clock=clock, read_only=True) as journal:
            await journal.read()
    assert path.read_bytes() == damaged


async def test_a_read_only_journal_cannot_be_written(journal: Journal, clock: FakeClock) -> None:
    await journal.append([created(clock)])
    async with await Journal.open(journal.path, read_only=True) as reader:
        assert [e.kind for e in await reader.read()] == ["run.created"]
        with pytest.raises(JournalError):
            await reader.append([message(clock, "nope")])


async def test_a_path_that_cannot_hold_a_journal_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / ".gm").write_text("a file where the directory should be")
    with pytest.raises(JournalError, match="cannot open the journal"):
        await Journal.open(tmp_path / ".gm" / "journal.db")
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(JournalError):
        await Journal.open(tmp_path / "dir.db")


async def test_opening_without_create_needs_an_existing_journal(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="gm run"):
        await Journal.open(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()


async def test_an_append_fenced_by_a_lease_owner_is_refused_once_the_lease_moved(
    journal: Journal, clock: FakeClock
) -> None:
    from gm_agent.errors import LeaseLost

    await journal.append([created(clock)])
    await journal.acquire_lease("RUN1", "old-owner", 10)
    await journal.append([message(clock, "mine")], lease_owner="old-owner")
    await journal.release_lease("RUN1", "old-owner")
    await journal.acquire_lease("RUN1", "new-owner", 10)
    with pytest.raises(LeaseLost, match="new-owner"):
        await journal.append([message(clock, "stale")], lease_owner="old-owner")
    assert [e.kind for e in await journal.read()] == ["run.created", "user.message"]


async def test_a_repeated_event_id_never_moves_the_runs_last_seq_back(
    journal: Journal, clock: FakeClock
) -> None:
    first = message(clock, "first")
    await journal.append([created(clock), first, message(clock, "second")])
    await journal.append([first])
    assert (await journal.get_run("RUN1")).last_seq == 3


async def test_each_event_is_sealed_by_a_digest_chained_to_its_runs_previous_event(
    journal: Journal, clock: FakeClock
) -> None:
    await journal.append([created(clock, "RUN1"), created(clock, "RUN2")])
    for n in range(3):  # two runs, interleaved: each has its own chain
        await journal.append([message(clock, f"a{n}", "RUN1"), message(clock, f"b{n}", "RUN2")])
    assert await journal.verify_chain("RUN1") is None
    assert await journal.verify_chain("RUN2") is None
    with sqlite3.connect(journal.path) as conn:
        conn.execute("DROP TRIGGER events_no_update")
        conn.execute("DROP TRIGGER events_no_delete")
        conn.execute('UPDATE events SET data = \'{"text":"forged"}\' WHERE seq = 5')
        conn.execute("DELETE FROM events WHERE seq = 4")  # RUN2's second event
    assert await journal.verify_chain("RUN1") == 5  # the changed event itself
    assert await journal.verify_chain("RUN2") == 6  # the event after the removed one


async def test_a_checkpoint_row_commits_with_its_events_and_the_newest_is_found(
    journal: Journal, clock: FakeClock
) -> None:
    (first,) = await journal.append([created(clock)])
    assert await journal.latest_checkpoint("RUN1") is None
    for upto in (1, 2, 3):
        record = CheckpointRecord(run_id="RUN1", upto_seq=upto, state=f"s{upto}", state_hash="h")
        await journal.append([message(clock, f"m{upto}")], [b"node"], checkpoint=record)
    assert (await journal.latest_checkpoint("RUN1")).upto_seq == 3  # type: ignore[union-attr]
    assert (await journal.latest_checkpoint("RUN1", at_most_seq=2)).state == "s2"  # type: ignore[union-attr]
    assert await journal.checkpoint_hashes("RUN1") == {1: "h", 2: "h", 3: "h"}
    node = hashlib.sha256(b"node").hexdigest()
    assert await journal.get_blobs(["missing", node]) == {node: b"node"}
    with pytest.raises(JournalError):  # a refused batch leaves no checkpoint behind
        bad = CheckpointRecord(run_id="RUN1", upto_seq=9, state="s9", state_hash="h")
        await journal.append([first], checkpoint=bad, lease_owner="nobody")
    assert 9 not in await journal.checkpoint_hashes("RUN1")


async def test_the_runs_list_says_why_a_run_waits_and_a_version_3_journal_learns_it(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "journal.db"
    async with await Journal.open(path, clock=clock) as journal:
        await journal.append(
            [
                created(clock, "R"),
                new_event(clock, "R", "kernel", RunStatusChanged.between("created", "running")),
                new_event(
                    clock, "R", "kernel", RunStatusChanged.between("running", "waiting", "approval")
                ),
            ]
        )
        assert (await journal.get_run("R")).status_reason == "approval"
        await journal.append(
            [new_event(clock, "R", "kernel", RunStatusChanged.between("waiting", "running"))]
        )
        assert (await journal.get_run("R")).status_reason is None  # running: no reason
        await journal.append(
            [new_event(clock, "R", "user", RunStatusChanged.between("running", "paused", "by you"))]
        )
    with sqlite3.connect(path) as conn:  # as gm 3's schema left it: no column
        conn.execute("DROP INDEX runs_by_parent")
        conn.execute("ALTER TABLE runs DROP COLUMN parent_run")
        conn.execute("ALTER TABLE runs DROP COLUMN status_reason")
        conn.execute("PRAGMA user_version = 3")
    async with await Journal.open(path, clock=clock) as journal:  # migrated: filled in
        assert (await journal.get_run("R")).status_reason == "by you"


async def test_a_child_run_knows_its_parent_and_a_version_4_journal_learns_it(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "journal.db"
    child = RunCreated(task="t", model="scripted:x", max_steps=3, workspace="/w", parent_run="P")
    async with await Journal.open(path, clock=clock) as journal:
        await journal.append([created(clock, "P"), new_event(clock, "C", "kernel", child)])
        assert (await journal.get_run("C")).parent_run == "P"
        assert (await journal.get_run("P")).parent_run is None
    with sqlite3.connect(path) as conn:  # as gm 4's schema left it: no column
        conn.execute("DROP INDEX runs_by_parent")
        conn.execute("ALTER TABLE runs DROP COLUMN parent_run")
        conn.execute("PRAGMA user_version = 4")
    async with await Journal.open(path, clock=clock) as journal:  # migrated: filled in
        assert (await journal.get_run("C")).parent_run == "P"
        assert (await journal.get_run("P")).parent_run is None


async def test_taking_a_lease_cancelled_while_it_waits_for_the_lock_leaves_no_transaction(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "journal.db"
    async with await Journal.open(path, clock=clock) as journal:
        await journal.append([created(clock, "R")])
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with anyio.move_on_after(0.2):
            await journal.acquire_lease("R", "me", 30)
        other.execute("ROLLBACK")
        await journal.append([new_event(clock, "R", "user", UserMessage(text="hi"))])  # not stuck
        second = sqlite3.connect(path, isolation_level=None, timeout=1)
        second.execute("BEGIN IMMEDIATE")  # and the lock is free for everyone else
        second.execute("ROLLBACK")
