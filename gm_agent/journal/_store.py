"""The SQLite journal: open, migrate, append, read, follow, blobs and run lookups."""

from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import json
import logging
import sqlite3
import urllib.parse
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict

from gm_agent._bulk import cycle_collection_paused
from gm_agent.clock import Clock, SystemClock, format_timestamp
from gm_agent.errors import (
    DuplicateEvent,
    JournalCorrupt,
    JournalError,
    JournalSchemaTooNew,
    LeaseLost,
    RunLeased,
    RunNotFound,
    Superseded,
)
from gm_agent.events import Event, RunStatus, event_from_record
from gm_agent.journal._chain import chain_head, event_columns, event_digest, first_broken_link
from gm_agent.journal._checkpoints import (
    CheckpointRecord,
    checkpoint_hashes,
    insert_checkpoint,
    latest_checkpoint,
)
from gm_agent.journal._leases import owner_alive
from gm_agent.journal._projections import encode_payload, project, project_last_seqs
from gm_agent.journal._schema import LATEST_VERSION, MIGRATIONS
from gm_agent.journal._sql import (
    BUSY_TIMEOUT_MS,
    fetchone,
    fetchone_or_none,
    transact,
    transaction,
    translate,
)
from gm_agent.journal._thread import AsyncConnection

log = logging.getLogger("gm_agent.journal")

Durability = Literal["full", "fast"]
"""``full``: ``synchronous=FULL``, a commit survives power loss. ``fast``:
``synchronous=NORMAL``, a commit survives a process crash but may be lost on
power loss (SQLite docs, "WAL mode ... synchronous=NORMAL")."""


_EVENT_COLUMNS = "seq, id, run_id, kind, v, at, source, causation_id, data"


class RunRow(BaseModel):
    """One row of the ``runs`` projection: a run's summary for listings."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    status: RunStatus
    task: str
    task_path: str | None
    model: str
    parent_id: str | None
    fork_seq: int | None
    created_at: str
    updated_at: str
    last_seq: int
    steps: int
    input_tokens: int
    output_tokens: int
    cost_usd: float = 0.0
    """US dollars over the run's priced responses; ``unpriced_steps`` had no price."""
    unpriced_steps: int = 0
    summary: str | None
    error: str | None
    lease_owner: str | None = None
    lease_expires_at: str | None = None
    status_reason: str | None = None
    """Why a ``waiting`` or ``paused`` run stopped (``approval``, ``writer lock: ...``)."""
    parent_run: str | None = None
    """The run that started this one as a child (``spawn_agent``, a scheme's agent step)."""
    orphaned: bool = False
    """Not ended (created, running, waiting) but no live process holds its lease: resume it."""


STEERING_KINDS = (
    "user.message",
    "run.interrupt",
    "run.cancel",
    "approval.granted",
    "approval.denied",
)
"""Events by which a person steers a run (source ``user``); see ``append(fence=...)``."""

_RUN_FIELDS = tuple(name for name in RunRow.model_fields if name != "orphaned")
_RUN_COLUMNS = ", ".join(_RUN_FIELDS)


def _row_to_event(row: sqlite3.Row | tuple[Any, ...]) -> Event:
    seq, id_, run_id, kind, v, at, source, causation_id, data = tuple(row)
    try:
        return event_from_record(
            {
                "seq": seq,
                "id": id_,
                "run_id": run_id,
                "kind": kind,
                "v": v,
                "at": at,
                "source": source,
                "causation_id": causation_id,
                "data": json.loads(data),
            }
        )
    except (ValueError, json.JSONDecodeError) as exc:
        raise JournalCorrupt(f"event seq {seq} ({kind!r}) cannot be read: {exc}", seq) from exc


def _parse_rows(rows: Iterable[tuple[Any, ...]]) -> list[Event]:
    """Parse rows into events (see :mod:`gm_agent._bulk` for why the collector waits)."""
    with cycle_collection_paused():
        return [_row_to_event(row) for row in rows]


def _commit(
    conn: sqlite3.Connection,
    events: Sequence[Event],
    blobs: Sequence[bytes],
    lease_owner: str | None,
    checkpoint: CheckpointRecord | None,
    unique: Collection[str],
    fence: tuple[str, int] | None,
) -> list[Event]:
    """The statements of :meth:`Journal.append`, inside its transaction."""
    if lease_owner is not None:
        _check_lease(conn, lease_owner, {e.run_id for e in events})
    if fence is not None:
        _check_unsteered(conn, *fence)
    for blob in blobs:
        conn.execute(
            "INSERT OR IGNORE INTO blobs (sha256, size, data) VALUES (?, ?, ?)",
            (hashlib.sha256(blob).hexdigest(), len(blob), blob),
        )
    heads = {r: chain_head(conn, r) for r in {e.run_id for e in events}}
    committed: list[Event] = []
    inserted: list[Event] = []
    for event in events:
        stored, new = _insert(conn, event, heads)
        if not new and event.id in unique:
            raise DuplicateEvent(f"event {event.id!r} is journaled already", stored)
        committed.append(stored)
        if new:
            inserted.append(stored)
    if checkpoint is not None:
        insert_checkpoint(conn, checkpoint)
    project_last_seqs(conn, inserted)
    return committed


def _check_lease(conn: sqlite3.Connection, owner: str, run_ids: set[str]) -> None:
    for run_id in sorted(run_ids):
        row = conn.execute("SELECT lease_owner FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is not None and row[0] != owner:
            raise LeaseLost(f"run {run_id} is now executed by {row[0]}; this process stopped")


def _check_unsteered(conn: sqlite3.Connection, run_id: str, after_seq: int) -> None:
    row = conn.execute(
        "SELECT seq, kind FROM events WHERE run_id = ? AND seq > ? AND source = 'user' "
        f"AND kind IN ({', '.join('?' * len(STEERING_KINDS))}) LIMIT 1",
        (run_id, after_seq, *STEERING_KINDS),
    ).fetchone()
    if row is not None:
        raise Superseded(f"run {run_id} got {row[1]} (seq {row[0]}) since seq {after_seq}")


def _insert(conn: sqlite3.Connection, event: Event, heads: dict[str, str]) -> tuple[Event, bool]:
    """Insert one event, chained to ``heads[run_id]`` (moved on when it is new).

    Returns the stored event and whether it is new (not a repeated id).
    """
    columns = event_columns(event, encode_payload(event))
    digest = event_digest(heads[event.run_id], columns)
    row = conn.execute(
        "INSERT INTO events (id, run_id, kind, v, at, source, causation_id, data, digest) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING seq",
        (*columns, digest),
    ).fetchone()
    if row is None:
        existing = conn.execute(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE id = ?", (event.id,)
        ).fetchone()
        return _row_to_event(existing), False
    seq = int(row[0])
    heads[event.run_id] = digest
    project(conn, event, seq)
    return event.model_copy(update={"seq": seq}), True


class Journal:
    """An open journal file: the single source of truth of every run.

    Open it with ``async with await Journal.open(path) as journal:``. One
    instance owns one SQLite connection; several processes may open the same
    file (WAL mode: readers never block the writer; writers take turns with
    ``BEGIN IMMEDIATE`` and a busy timeout of :data:`BUSY_TIMEOUT_MS`).
    """

    def __init__(self, path: Path, conn: AsyncConnection, clock: Clock) -> None:
        self.path = path
        self._conn = conn
        self._clock = clock

    # -- opening -----------------------------------------------------------

    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        durability: Durability = "full",
        clock: Clock | None = None,
        create: bool = True,
        read_only: bool = False,
    ) -> Self:
        """Open (and create or migrate) the journal at ``path``.

        Args:
            path: the journal file, usually ``<workspace>/.gm/journal.db``.
            durability: ``full`` (default) or ``fast``; see :data:`Durability`.
            clock: used by :meth:`follow` to sleep between polls.
            create: when false, a missing file raises instead of being created.
            read_only: open for reading only (``gm log``, ``gm runs``): nothing is
                ever written, not even a pragma.

        Raises:
            JournalCorrupt: the file is not an SQLite database, not a gm journal,
                or fails SQLite's ``quick_check`` (checked before a writer's first write).
            JournalSchemaTooNew: the file was written by a newer gm_agent.
            JournalError: the file is missing (``create=False``) or unusable.

        A refused file is never modified: its version, shape and integrity are
        checked before any pragma or migration writes to it.
        """
        path = Path(path)
        try:
            if not path.exists():
                if not create or read_only:
                    raise JournalError(
                        f"no journal at {str(path)!r}; run `gm run TASK` in this workspace first"
                    )
                path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():  # refused here, with a clearer message than SQLite's
                raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
            if read_only:
                uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
                conn = await AsyncConnection.open(uri, uri=True)
            else:
                conn = await AsyncConnection.open(path)
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"cannot open the journal {str(path)!r}: {exc}") from exc
        try:
            await cls._check(path, conn, integrity=not read_only)
            if read_only:
                await cls._require_current(path, conn)
                await conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            else:
                await cls._set_pragmas(path, conn, durability)
                await cls._migrate(path, conn)
        except BaseException:
            await conn.close()
            raise
        return cls(path, conn, clock or SystemClock())

    @staticmethod
    async def _require_current(path: Path, conn: AsyncConnection) -> None:
        version = (await fetchone(conn, "PRAGMA user_version"))[0]
        if version < LATEST_VERSION:
            raise JournalError(
                f"{str(path)!r} has an older schema (version {version}); "
                "run any gm command that writes (e.g. `gm run`) to upgrade it"
            )

    @staticmethod
    async def _check(path: Path, conn: AsyncConnection, *, integrity: bool) -> None:
        """Refuse, without writing, a file that is not a journal we can read.

        With ``integrity``, also run ``PRAGMA quick_check`` (O(file size); SQLite
        docs, "quick_check"), so a damaged page is found before we append to it.
        """
        try:
            version = (await fetchone(conn, "PRAGMA user_version"))[0]
            tables = {r[0] for r in await conn.execute_fetchall("SELECT name FROM sqlite_master")}
            verdict = (await fetchone(conn, "PRAGMA quick_check(1)"))[0] if integrity else "ok"
        except sqlite3.Error as exc:
            raise translate(path, exc) from exc
        if verdict != "ok":
            raise JournalCorrupt(
                f"{str(path)!r} is damaged (SQLite quick_check: {verdict}); it was not modified. "
                "Move it aside to start a new journal, or restore it from a backup"
            )
        if version > LATEST_VERSION:
            raise JournalSchemaTooNew(str(path), version, LATEST_VERSION)
        if version == 0 and tables:
            raise JournalCorrupt(
                f"{str(path)!r} is an SQLite database but not a gm journal "
                f"(it has tables {sorted(tables)!r}); it was not modified"
            )
        if version > 0 and "events" not in tables:
            raise JournalCorrupt(f"{str(path)!r} has no events table; it was not modified")

    @staticmethod
    async def _set_pragmas(path: Path, conn: AsyncConnection, durability: Durability) -> None:
        synchronous = "FULL" if durability == "full" else "NORMAL"
        try:
            mode = (await fetchone(conn, "PRAGMA journal_mode=WAL"))[0]
            await conn.execute(f"PRAGMA synchronous={synchronous}")
            await conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        except sqlite3.Error as exc:
            raise translate(path, exc) from exc
        log.debug(
            "journal %s: journal_mode=%s synchronous=%s busy_timeout=%d",
            path,
            mode,
            synchronous,
            BUSY_TIMEOUT_MS,
        )

    @staticmethod
    async def _migrate(path: Path, conn: AsyncConnection) -> None:
        try:
            version = (await fetchone(conn, "PRAGMA user_version"))[0]
            for number in range(version + 1, LATEST_VERSION + 1):
                async with transaction(conn):
                    # Another process may have migrated while we waited for the lock.
                    current = (await fetchone(conn, "PRAGMA user_version"))[0]
                    if current < number:
                        for statement in MIGRATIONS[number - 1]:
                            await conn.execute(statement)
                        await conn.execute(f"PRAGMA user_version={number}")
                log.debug("journal %s: migrated to schema version %d", path, number)
        except sqlite3.Error as exc:
            raise translate(path, exc) from exc

    async def close(self) -> None:
        """Close the connection. Committed events are already durable."""
        await self._conn.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- writing -----------------------------------------------------------

    async def append(
        self,
        events: Sequence[Event],
        blobs: Iterable[bytes] = (),
        *,
        lease_owner: str | None = None,
        checkpoint: CheckpointRecord | None = None,
        unique: Collection[str] = (),
        fence: tuple[str, int] | None = None,
    ) -> list[Event]:
        """Commit ``events`` (and content ``blobs``) in one transaction.

        Args:
            events: uncommitted events, in order.
            blobs: file contents the events refer to by sha256; stored once each.
            lease_owner: when given, the batch is committed only if this owner still
                holds the lease of every run the events belong to (fencing: a process
                that lost its lease can never write to the run again).
            checkpoint: a checkpoint row committed with the events (with its
                ``checkpoint.saved`` event).
            unique: ids of events that must be new: if one is in the journal
                already, nothing is committed and ``DuplicateEvent`` is raised (so
                a redelivered webhook cannot start a second run, even from a
                second process).
            fence: ``(run_id, seq)``: commit only if no one steered the run after
                ``seq`` (no ``user``-sourced message, interrupt, cancel or answer):
                the kernel's decisions are made on the state up to ``seq``.

        Returns:
            The events as committed, with ``seq`` set, in the same order. An event
            whose ``id`` is already in the journal is not appended again: the stored
            one is returned (idempotent delivery).

        Raises:
            LeaseLost: ``lease_owner`` no longer holds a run's lease; nothing is committed.
            DuplicateEvent: an event of ``unique`` exists; nothing is committed.
            Superseded: ``fence`` found a steering event; nothing is committed.
            JournalError: the write failed (disk full, locked too long); nothing of
                this batch is committed and everything committed before is kept.

        The batch is committed whole or not at all, in one call on the journal's
        thread: cancelling the caller meanwhile does not cut it short.
        """
        blobs = list(blobs)

        def commit(conn: sqlite3.Connection) -> list[Event]:
            return _commit(conn, events, blobs, lease_owner, checkpoint, unique, fence)

        try:  # one call on the connection's thread for the whole transaction
            return await self._conn.run(lambda conn: transact(conn, commit))
        except sqlite3.Error as exc:
            raise translate(self.path, exc) from exc
        except UnicodeEncodeError as exc:
            raise JournalError(
                f"an event holds text that is not valid Unicode ({exc}); a bug"
            ) from exc

    # -- reading -----------------------------------------------------------

    async def read(
        self,
        run_id: str | None = None,
        after_seq: int = 0,
        limit: int | None = None,
        kinds: Sequence[str] | None = None,
    ) -> list[Event]:
        """Events with ``seq > after_seq``, oldest first; one run's or all runs';
        only those of ``kinds`` when given.

        Raises:
            JournalCorrupt: a stored event cannot be read.
        """
        sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq > ?"
        params: list[Any] = [after_seq]
        if run_id is not None:
            sql += " AND run_id = ?"
            params.append(run_id)
        if kinds is not None:
            sql += f" AND kind IN ({', '.join('?' * len(kinds))})"
            params.extend(kinds)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        try:
            rows = await self._conn.execute_fetchall(sql, params)
        except sqlite3.Error as exc:
            raise translate(self.path, exc) from exc
        return _parse_rows(rows)

    async def last_written(self, path: str) -> tuple[bool, str | None]:
        """What gm itself last wrote to workspace path ``path`` (a patch applied,
        reapplied or reverted): ``(True, sha256 of the content)``, with ``None`` for
        a deletion; ``(False, None)`` when gm never wrote it."""
        row = await fetchone_or_none(
            self._conn,
            "SELECT json_extract(f.value, '$.after_sha256') FROM events, "
            "json_each(events.data, '$.files') AS f WHERE events.kind IN "
            "('patch.applied', 'patch.reapplied', 'patch.reverted') "
            "AND json_extract(f.value, '$.path') = ? ORDER BY events.seq DESC LIMIT 1",
            (path,),
        )
        return (False, None) if row is None else (True, row[0])

    async def find_event(self, event_id: str) -> Event | None:
        """The event with id ``event_id``, if the journal holds it."""
        row = await fetchone_or_none(
            self._conn, f"SELECT {_EVENT_COLUMNS} FROM events WHERE id = ?", (event_id,)
        )
        return None if row is None else _row_to_event(row)

    async def last_seq(self) -> int:
        """The seq of the newest event in the journal (0 when it is empty)."""
        row = await fetchone(self._conn, "SELECT COALESCE(MAX(seq), 0) FROM events", ())
        return int(row[0])

    async def read_upto(self, run_id: str, upto_seq: int, after_seq: int = 0) -> list[Event]:
        """``run_id``'s events with ``after_seq < seq <= upto_seq``, oldest first."""
        try:
            rows = await self._conn.execute_fetchall(
                f"SELECT {_EVENT_COLUMNS} FROM events "
                "WHERE run_id = ? AND seq > ? AND seq <= ? ORDER BY seq",
                (run_id, after_seq, upto_seq),
            )
        except sqlite3.Error as exc:
            raise translate(self.path, exc) from exc
        return _parse_rows(rows)

    async def integrity(self) -> str:
        """SQLite's ``PRAGMA quick_check`` verdict: ``"ok"``, or what is damaged."""
        try:
            return str((await fetchone(self._conn, "PRAGMA quick_check(1)"))[0])
        except sqlite3.Error as exc:
            raise translate(self.path, exc) from exc

    async def verify_chain(self, run_id: str) -> int | None:
        """The seq of ``run_id``'s first event changed since it was written, or ``None``.

        Each event carries a sha256 digest chained to the run's previous event
        (:mod:`gm_agent.journal._chain`), so an edited, removed or inserted event
        breaks the chain at or right after it.
        """
        try:
            return await self._conn.run(lambda conn: first_broken_link(conn, run_id))
        except sqlite3.Error as exc:
            raise translate(self.path, exc) from exc

    # -- checkpoints ---------------------------------------------------------

    async def latest_checkpoint(
        self, run_id: str, at_most_seq: int | None = None
    ) -> CheckpointRecord | None:
        """``run_id``'s newest checkpoint (at or before ``at_most_seq`` when given)."""
        try:
            return await latest_checkpoint(self._conn, run_id, at_most_seq)
        except sqlite3.Error as exc:
            raise translate(self.path, exc) from exc

    async def checkpoint_hashes(self, run_id: str) -> dict[int, str]:
        """``{upto_seq: state_hash}`` of each of ``run_id``'s checkpoints, oldest first."""
        try:
            return await checkpoint_hashes(self._conn, run_id)
        except sqlite3.Error as exc:
            raise translate(self.path, exc) from exc

    async def get_blobs(self, shas: Iterable[str]) -> dict[str, bytes]:
        """The blobs stored under ``shas`` that exist, as ``{sha256: content}``."""
        wanted = sorted(set(shas))
        found: dict[str, bytes] = {}
        try:
            for start in range(0, len(wanted), 500):  # SQLite's bound-parameter limit
                chunk = wanted[start : start + 500]
                rows = await self._conn.execute_fetchall(
                    f"SELECT sha256, data FROM blobs WHERE sha256 IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
                found.update((str(r[0]), bytes(r[1])) for r in rows)
        except sqlite3.Error as exc:
            raise translate(self.path, exc) from exc
        return found

    async def follow(
        self,
        run_id: str | None = None,
        after_seq: int = 0,
        *,
        poll_s: float = 0.05,
        stop_when_finished: bool = True,
    ) -> AsyncIterator[Event]:
        """Yield events as they are committed, by this or any other process.

        Like ``tail -f``: first what is already there after ``after_seq``, then new
        events, polling every ``poll_s`` seconds (default 50 ms). When following one
        run and ``stop_when_finished``, the iteration ends after its
        ``run.finished`` event; otherwise it runs until cancelled.
        """
        last = after_seq
        while True:
            batch = await self.read(run_id, after_seq=last, limit=500)
            for event in batch:
                assert event.seq is not None
                last = event.seq
                yield event
                if run_id is not None and stop_when_finished and event.kind == "run.finished":
                    return
            if len(batch) < 500:
                await self._clock.sleep(poll_s)

    async def get_blob(self, sha256: str) -> bytes:
        """The content stored under ``sha256``.

        Raises:
            JournalError: no blob has that hash.
        """
        row = await fetchone_or_none(
            self._conn, "SELECT data FROM blobs WHERE sha256 = ?", (sha256,)
        )
        if row is None:
            raise JournalError(f"no blob {sha256!r} in {str(self.path)!r}")
        return bytes(row[0])

    async def list_runs(self) -> list[RunRow]:
        """Every run, newest first, from the ``runs`` projection (``orphaned`` computed now)."""
        rows = await self._conn.execute_fetchall(
            f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY created_at DESC, run_id DESC"
        )
        return [self._run_row(row) for row in rows]

    def _run_row(self, row: tuple[Any, ...]) -> RunRow:
        fields = dict(zip(_RUN_FIELDS, row, strict=True))
        live = fields["status"] in ("created", "running", "waiting")
        owner, expires = fields["lease_owner"], fields["lease_expires_at"]
        held = owner is not None and not self._lease_free(owner, expires)
        return RunRow(**fields, orphaned=live and not held)

    def _lease_free(self, owner: str | None, expires_at: str | None) -> bool:
        if owner is None or expires_at is None:
            return True
        return expires_at <= format_timestamp(self._clock.now()) or not owner_alive(owner)

    # -- leases --------------------------------------------------------------

    async def acquire_lease(self, run_id: str, owner: str, ttl_s: float) -> None:
        """Take the lease on ``run_id`` for ``ttl_s`` seconds.

        Succeeds when the lease is free (no owner, expired, or its owner's process
        is gone) or already ours.

        Raises:
            RunNotFound: no such run.
            RunLeased: another live process holds it (the message names it).
        """
        try:
            async with transaction(self._conn):
                row = await fetchone_or_none(
                    self._conn,
                    "SELECT lease_owner, lease_expires_at FROM runs WHERE run_id = ?",
                    (run_id,),
                )
                if row is None:
                    raise RunNotFound(f"no run {run_id!r} in this workspace; see `gm runs`")
                holder, expires = row[0], row[1]
                if holder not in (None, owner) and not self._lease_free(holder, expires):
                    raise RunLeased(run_id, holder, expires)
                await self._conn.execute(
                    "UPDATE runs SET lease_owner = ?, lease_expires_at = ? WHERE run_id = ?",
                    (owner, self._expiry(ttl_s), run_id),
                )
        except sqlite3.Error as exc:
            raise translate(self.path, exc) from exc

    async def renew_lease(self, run_id: str, owner: str, ttl_s: float) -> None:
        """Extend our lease by ``ttl_s`` seconds from now.

        Raises:
            LeaseLost: the lease is no longer ours (it expired and was taken).
        """
        try:
            changed = await self._conn.execute(
                "UPDATE runs SET lease_expires_at = ? WHERE run_id = ? AND lease_owner = ?",
                (self._expiry(ttl_s), run_id, owner),
            )
        except sqlite3.Error as exc:
            raise translate(self.path, exc) from exc
        if changed != 1:
            raise LeaseLost(f"the lease on run {run_id} was taken by another process; stopping")

    async def release_lease(self, run_id: str, owner: str) -> None:
        """Give the lease up, if it is still ours."""
        try:
            await self._conn.execute(
                "UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL "
                "WHERE run_id = ? AND lease_owner = ?",
                (run_id, owner),
            )
        except sqlite3.Error as exc:
            raise translate(self.path, exc) from exc

    def _expiry(self, ttl_s: float) -> str:
        return format_timestamp(self._clock.now() + _dt.timedelta(seconds=ttl_s))

    async def has_run(self, run_id: str) -> bool:
        """Whether a run with exactly this id is journaled."""
        row = await fetchone_or_none(self._conn, "SELECT 1 FROM runs WHERE run_id = ?", (run_id,))
        return row is not None

    async def get_run(self, run_id: str) -> RunRow:
        """One run's row from the ``runs`` projection.

        Raises:
            RunNotFound: no run has that id.
        """
        row = await fetchone_or_none(
            self._conn, f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)
        )
        if row is None:
            raise RunNotFound(f"no run {run_id!r} in this workspace; see `gm runs`")
        return self._run_row(row)

    async def resolve_run(self, ref: str) -> str:
        """Turn a run reference into a run id.

        Args:
            ref: a full run id, a unique prefix of one (case-insensitive), or ``last``
                (the most recently created run that no other run started: a
                child run is named by its id).

        Raises:
            RunNotFound: nothing matches, or a prefix matches several runs.
        """
        if ref == "last":
            row = await fetchone_or_none(
                self._conn,
                "SELECT run_id FROM runs WHERE parent_run IS NULL "
                "ORDER BY created_at DESC, run_id DESC LIMIT 1",
            )
            if row is None:
                raise RunNotFound(
                    "there are no runs in this workspace yet; start one with `gm run TASK`"
                )
            return str(row[0])
        rows = await self._conn.execute_fetchall(
            "SELECT run_id FROM runs WHERE run_id LIKE ? ESCAPE '\\' LIMIT 6",
            (ref.upper().replace("%", "\\%").replace("_", "\\_") + "%",),
        )
        ids = [str(r[0]) for r in rows]
        if not ids:
            raise RunNotFound(f"no run matches {ref!r}; see `gm runs`")
        if len(ids) > 1 and ref.upper() not in ids:
            raise RunNotFound(
                f"{ref!r} matches several runs ({', '.join(ids)}); give more characters"
            )
        return ref.upper() if ref.upper() in ids else ids[0]
