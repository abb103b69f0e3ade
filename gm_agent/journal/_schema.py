"""The journal's schema, as numbered migrations.

Migration ``n`` takes a journal from ``PRAGMA user_version = n - 1`` to ``n``. Each
runs in one ``BEGIN IMMEDIATE`` transaction together with the ``user_version``
bump, so a journal is never left half migrated (SQLite makes ``user_version``
transactional). Migrations are append-only: never edit a released one.
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: events, the projections kept beside them, blobs.
    (
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            run_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            v INTEGER NOT NULL,
            at TEXT NOT NULL,
            source TEXT NOT NULL,
            causation_id TEXT,
            data TEXT NOT NULL
        )""",
        "CREATE INDEX events_run_seq ON events (run_id, seq)",
        # The journal is append-only: the database itself refuses the rest.
        """CREATE TRIGGER events_no_update BEFORE UPDATE ON events
           BEGIN SELECT RAISE(ABORT, 'events are append-only'); END""",
        """CREATE TRIGGER events_no_delete BEFORE DELETE ON events
           BEGIN SELECT RAISE(ABORT, 'events are append-only'); END""",
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            task TEXT NOT NULL,
            task_path TEXT,
            model TEXT NOT NULL,
            parent_id TEXT,
            lease_owner TEXT,
            lease_expires_at TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            last_seq INTEGER NOT NULL,
            steps INTEGER NOT NULL DEFAULT 0,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            summary TEXT,
            error TEXT
        )""",
        """CREATE TABLE jobs (
            job_id TEXT PRIMARY KEY,
            run_id TEXT NOT NULL,
            key TEXT NOT NULL,
            kind TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            intent_seq INTEGER NOT NULL,
            result_seq INTEGER
        )""",
        "CREATE INDEX jobs_run ON jobs (run_id)",
        "CREATE INDEX jobs_key ON jobs (key)",
        """CREATE TABLE checkpoints (
            run_id TEXT NOT NULL,
            upto_seq INTEGER NOT NULL,
            state TEXT NOT NULL,
            state_hash TEXT NOT NULL,
            PRIMARY KEY (run_id, upto_seq)
        )""",
        """CREATE TABLE blobs (
            sha256 TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            data BLOB NOT NULL
        )""",
    ),
    # 2: a digest chain sealing each run's events; fork points of forked runs.
    (
        "ALTER TABLE events ADD COLUMN digest TEXT",
        "ALTER TABLE runs ADD COLUMN fork_seq INTEGER",
    ),
    # 3: each run's cost in US dollars, and how many of its responses had no price.
    (
        "ALTER TABLE runs ADD COLUMN cost_usd REAL NOT NULL DEFAULT 0",
        "ALTER TABLE runs ADD COLUMN unpriced_steps INTEGER NOT NULL DEFAULT 0",
    ),
    # 4: why a run waits or is paused (its last status change's reason), for listings.
    (
        "ALTER TABLE runs ADD COLUMN status_reason TEXT",
        """UPDATE runs SET status_reason = (
            SELECT json_extract(e.data, '$.reason') FROM events e
            WHERE e.run_id = runs.run_id AND e.kind = 'run.status_changed'
              AND json_valid(e.data)  -- one damaged row must not block the upgrade
            ORDER BY e.seq DESC LIMIT 1
        ) WHERE status IN ('waiting', 'paused')""",
    ),
    # 5: the run that started this one (a spawn_agent child, a scheme's agent step), for trees.
    (
        "ALTER TABLE runs ADD COLUMN parent_run TEXT",
        """UPDATE runs SET parent_run = (
            SELECT json_extract(e.data, '$.parent_run') FROM events e
            WHERE e.run_id = runs.run_id AND e.kind = 'run.created' AND json_valid(e.data)
            ORDER BY e.seq LIMIT 1
        )""",
        "CREATE INDEX IF NOT EXISTS runs_by_parent ON runs (parent_run)",
    ),
)

LATEST_VERSION = len(MIGRATIONS)
"""The newest schema version this code writes and reads."""
