"""Projections kept in the same transaction as the events that change them.

``runs`` and ``jobs`` are caches of what the events say, for listing and
lookups; the events remain the source of truth. :func:`project` is called for
each newly inserted event inside the append transaction, on the connection's
thread (the whole append is one call there; see ``_thread``).
"""

from __future__ import annotations

import json
import sqlite3

from gm_agent.events import (
    Event,
    JobAmbiguous,
    JobAttemptFailed,
    JobCancelled,
    JobIntent,
    JobResult,
    ModelResponse,
    RunCreated,
    RunFinished,
    RunForked,
    RunStatusChanged,
)


def project(conn: sqlite3.Connection, event: Event, seq: int) -> None:
    """Apply one newly inserted event (with its ``seq``) to the projection tables.

    ``last_seq`` is moved once per batch by :func:`project_last_seqs`.
    """
    data = event.data
    match data:
        case RunCreated():
            conn.execute(
                "INSERT INTO runs (run_id, status, task, task_path, model, parent_run, "
                "created_at, updated_at, last_seq) VALUES (?, 'created', ?, ?, ?, ?, ?, ?, ?)",
                (
                    event.run_id,
                    data.task,
                    data.task_path,
                    data.model,
                    data.parent_run,
                    event.at,
                    event.at,
                    seq,
                ),
            )
        case RunForked():
            conn.execute(
                "INSERT INTO runs (run_id, status, task, task_path, model, parent_id, fork_seq, "
                "created_at, updated_at, last_seq, steps, input_tokens, output_tokens, cost_usd) "
                "VALUES (?, 'created', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event.run_id,
                    data.task,
                    data.task_path,
                    data.model,
                    data.parent_id,
                    data.fork_seq,
                    event.at,
                    event.at,
                    seq,
                    data.steps,
                    data.input_tokens,
                    data.output_tokens,
                    data.cost_usd,
                ),
            )
        case RunStatusChanged():
            conn.execute(
                "UPDATE runs SET status = ?, status_reason = ? WHERE run_id = ?",
                (data.to, data.reason if data.to in ("waiting", "paused") else None, event.run_id),
            )
        case ModelResponse():
            conn.execute(
                "UPDATE runs SET steps = steps + 1, input_tokens = input_tokens + ?, "
                "output_tokens = output_tokens + ?, cost_usd = cost_usd + ?, "
                "unpriced_steps = unpriced_steps + ? WHERE run_id = ?",
                (
                    data.usage.input_tokens,
                    data.usage.output_tokens,
                    data.cost_usd or 0.0,
                    int(data.cost_usd is None),
                    event.run_id,
                ),
            )
        case RunFinished():
            conn.execute(
                "UPDATE runs SET status = ?, status_reason = NULL, summary = ?, error = ? "
                "WHERE run_id = ?",
                (data.status, data.summary, data.error, event.run_id),
            )
        case JobIntent():
            conn.execute(
                "INSERT INTO jobs (job_id, run_id, key, kind, status, attempts, intent_seq) "
                "VALUES (?, ?, ?, ?, 'started', 1, ?) ON CONFLICT (job_id) DO UPDATE SET "
                "attempts = attempts + 1",
                (data.job_id, event.run_id, data.key, data.job_kind, seq),
            )
        case JobAttemptFailed():
            conn.execute(
                "UPDATE jobs SET attempts = ? WHERE job_id = ?", (data.attempt + 1, data.job_id)
            )
        case JobAmbiguous() | JobCancelled():
            status = "ambiguous" if isinstance(data, JobAmbiguous) else "cancelled"
            conn.execute("UPDATE jobs SET status = ? WHERE job_id = ?", (status, data.job_id))
        case JobResult():
            conn.execute(
                "UPDATE jobs SET status = ?, attempts = ?, result_seq = ? WHERE job_id = ?",
                ("succeeded" if data.ok else "failed", data.attempts, seq, data.job_id),
            )
        case _:
            pass


def project_last_seqs(conn: sqlite3.Connection, committed: list[Event]) -> None:
    """Move each run's ``last_seq`` and ``updated_at`` to its newest event of the batch."""
    newest: dict[str, Event] = {}
    for event in committed:
        newest[event.run_id] = event
    for run_id, event in newest.items():
        conn.execute(
            "UPDATE runs SET last_seq = ?, updated_at = ? WHERE run_id = ?",
            (event.seq, event.at, run_id),
        )


def encode_payload(event: Event) -> str:
    """The ``data`` column's text: compact, key-sorted JSON."""
    return json.dumps(event.payload(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
