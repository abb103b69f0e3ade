"""Checkpoints: a run's state saved at a safe point, in storage linear in the run.

A run's state grows with the run (its conversation, jobs and patches), so
saving all of it at every checkpoint would grow quadratically (LangGraph's
SQLite checkpointer does; see docs/replay.md). Here each of those three lists
is saved as a hash tree of content-addressed journal blobs (and so is the list
of changed files)::

    root node  = [hash of page 1, hash of page 2, ...]          (at most FANOUT)
    page node  = [hash of item 1, ..., hash of item FANOUT]     (aligned from 0)
    item       = canonical JSON of one turn, job or patch

Pages are aligned from the list's start, so every full page whose items did not
change has the same hash as at the previous checkpoint and is not stored again.
A checkpoint adds only the items that are new or changed since the previous
one, plus the last page of each level and the root: a few KiB, however long the
run. The rest of the state (a few scalars) is stored inline.

Encoding needs each item's canonical JSON and hash. Turns, jobs and patches are
immutable, and a later state holds the very objects of the items that did not
change, so the kernel keeps an :class:`ItemCodes` for its run: an item is
encoded once, however many checkpoints include it.

Loading reads the tree level by level (one query per level) and checks the
result against the checkpoint's ``state_hash``; a checkpoint that cannot be
used (written by another format, a blob missing, a hash mismatch) is skipped
and the run is folded from its events instead: checkpoints only ever make
loading faster, never different.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from gm_agent._bulk import cycle_collection_paused
from gm_agent.events import Event, RunForked
from gm_agent.journal import CheckpointRecord, Journal
from gm_agent.kernel.state import RunState, fold

__all__ = [
    "FANOUT",
    "LAST_SEQ",
    "EncodedState",
    "ItemCodes",
    "decode_state",
    "encode_state",
    "history",
    "lineage",
    "load_state",
]

log = logging.getLogger("gm_agent.kernel")

FORMAT = 1
"""The layout of a checkpoint's ``state`` text; another value is not read (the run is folded)."""

FANOUT = 64
"""Hashes per tree node. 64 hex hashes make a node of about 4.2 KiB."""

_TREES = ("conversation", "jobs", "patches", "changed_files")
LAST_SEQ = 2**62
"""An upper bound for any seq: "up to the end"."""


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class EncodedState:
    """A state ready to store: the checkpoint's ``text``, its ``state_hash``, and the
    tree ``nodes`` (``{sha256: bytes}``) not already stored by an earlier checkpoint."""

    text: str
    state_hash: str
    nodes: dict[str, bytes]

    def record(self, run_id: str, upto_seq: int) -> CheckpointRecord:
        """The journal row for this state, saved as the state after event ``upto_seq``."""
        return CheckpointRecord(
            run_id=run_id, upto_seq=upto_seq, state=self.text, state_hash=self.state_hash
        )


_Code = tuple[bytes, str]
"""An item's canonical JSON and the hex sha256 of it."""


def _code(value: Any) -> _Code:
    data = _canonical(value)
    return data, hashlib.sha256(data).hexdigest()


class ItemCodes:
    """The codes of the items of a run's state trees (its turns, jobs, patches and
    changed files), each computed once per item object.

    Keep one per run (the kernel does) and give it to :func:`encode_state`: an
    item a checkpoint encoded before, the same object in a later state, is not
    encoded again. It holds the items of the last state encoded only.
    """

    def __init__(self) -> None:
        self._known: dict[int, tuple[object, _Code]] = {}

    def trees(self, state: RunState) -> dict[str, list[_Code]]:
        """Each tree's items' codes, in order, for ``state``."""
        known, kept = self._known, dict[int, tuple[object, _Code]]()
        found: dict[str, list[_Code]] = {}
        for name in _TREES:
            items: Sequence[Any] = getattr(state, name)
            codes: list[_Code] = []
            for item in items:
                entry = known.get(id(item))
                if entry is None or entry[0] is not item:
                    dumped = item if isinstance(item, str) else item.model_dump(mode="json")
                    entry = (item, _code(dumped))
                kept[id(item)] = entry
                codes.append(entry[1])
            found[name] = codes
        self._known = kept
        return found


class _Nodes:
    """Collects the tree nodes an encoding needs, leaving out the ones already stored."""

    def __init__(self, stored: Set[str]) -> None:
        self.stored = stored
        self.new: dict[str, bytes] = {}

    def put(self, code: _Code) -> str:
        data, sha = code
        if sha not in self.stored:
            self.new[sha] = data
        return sha

    def tree(self, items: list[_Code]) -> dict[str, Any]:
        hashes = [self.put(item) for item in items]
        depth = 0
        while len(hashes) > FANOUT:
            hashes = [
                self.put(_code(hashes[i : i + FANOUT])) for i in range(0, len(hashes), FANOUT)
            ]
            depth += 1
        return {"root": self.put(_code(hashes)), "depth": depth, "count": len(items)}


def _canonical_object(parts: dict[str, bytes]) -> bytes:
    """The canonical JSON of an object whose values' canonical JSON is ``parts``
    (what :func:`_canonical` gives: keys sorted, no spaces)."""
    members = (_canonical(key) + b":" + parts[key] for key in sorted(parts))
    return b"{" + b",".join(members) + b"}"


def encode_state(
    state: RunState, stored: Iterable[str] = (), codes: ItemCodes | None = None
) -> EncodedState:
    """Encode ``state`` for a checkpoint.

    Args:
        state: the state to save.
        stored: hashes of tree nodes already in the journal (from earlier
            checkpoints of this run); they are referenced, not stored again.
        codes: the run's item codes (see :class:`ItemCodes`); the result is the
            same without them, only slower for a long run.

    Returns:
        The checkpoint text, the hex sha256 of the state's canonical JSON (the
        same as :meth:`RunState.state_hash`), and the nodes to store.
    """
    trees = (codes or ItemCodes()).trees(state)
    dumped = state.model_dump(mode="json", exclude=set(_TREES))
    parts = {key: _canonical(value) for key, value in dumped.items()}
    for name, items in trees.items():  # a list's canonical JSON is its items', joined
        parts[name] = b"[" + b",".join(data for data, _ in items) + b"]"
    state_hash = hashlib.sha256(_canonical_object(parts)).hexdigest()
    nodes = _Nodes(stored if isinstance(stored, Set) else frozenset(stored))
    for name, items in trees.items():
        dumped[name] = nodes.tree(items)
    text = _canonical({"format": FORMAT, "state": dumped}).decode()
    return EncodedState(text, state_hash, nodes.new)


class _Unusable(Exception):
    """A checkpoint that cannot be loaded; the run is folded from its events instead."""


async def _read_tree(journal: Journal, tree: dict[str, Any], seen: set[str]) -> bytes:
    """The list a tree holds, as the canonical JSON array of its items."""
    level: list[str] = [tree["root"]]
    for _ in range(int(tree["depth"]) + 1):
        blobs = await journal.get_blobs(level)
        if len(blobs) < len(set(level)):
            raise _Unusable("a tree node is missing")
        seen.update(level)
        level = [sha for node in level for sha in json.loads(blobs[node])]
    blobs = await journal.get_blobs(level)
    if len(blobs) < len(set(level)):
        raise _Unusable("an item is missing")
    seen.update(level)
    return b"[" + b",".join(blobs[sha] for sha in level) + b"]"


def _slot(name: str) -> str:
    return f"\x00tree:{name}\x00"


async def decode_state(journal: Journal, record: CheckpointRecord) -> tuple[RunState, set[str]]:
    """The state a checkpoint holds, and the hashes of the tree nodes it references.

    The state's canonical JSON is reassembled from the stored parts (each stored
    canonically), checked against ``record.state_hash``, then parsed once.

    Raises:
        _Unusable: another format, a missing blob, or a state that does not hash
            to ``record.state_hash``.
    """
    try:
        doc = json.loads(record.state)
        if doc.get("format") != FORMAT:
            raise _Unusable(f"format {doc.get('format')!r}")
        dumped = doc["state"]
        seen: set[str] = set()
        arrays: dict[str, bytes] = {}
        for name in _TREES:
            arrays[name] = await _read_tree(journal, dumped[name], seen)
            dumped[name] = _slot(name)
        text = _canonical(dumped)
        for name, array in arrays.items():
            text = text.replace(_canonical(_slot(name)), array, 1)
        if hashlib.sha256(text).hexdigest() != record.state_hash:
            raise _Unusable("its state does not match its hash")
        with cycle_collection_paused():  # see gm_agent._bulk
            return RunState.model_validate_json(text), seen
    except (ValueError, KeyError, TypeError, ValidationError) as exc:
        raise _Unusable(str(exc)) from exc


async def lineage(journal: Journal, run_id: str) -> list[tuple[str, int | None]]:
    """``[(run_id, None), (parent_id, fork_seq), (grandparent_id, its fork_seq), ...]``:
    the run, then each run its history comes from and up to which seq."""
    chain: list[tuple[str, int | None]] = [(run_id, None)]
    while True:
        first = await journal.read(chain[-1][0], limit=1)
        if not first or not isinstance(first[0].data, RunForked):
            return chain
        chain.append((first[0].data.parent_id, first[0].data.fork_seq))


async def history(journal: Journal, run_id: str, upto_seq: int | None = None) -> list[Event]:
    """Every event of ``run_id``'s history, oldest first: for a fork, its parent's up
    to the fork point (recursively), then its own. Only events up to ``upto_seq``."""
    own = await journal.read_upto(run_id, LAST_SEQ if upto_seq is None else upto_seq)
    if own and isinstance(own[0].data, RunForked):
        parent = own[0].data
        return [*await history(journal, parent.parent_id, parent.fork_seq), *own]
    return own


async def load_state(
    journal: Journal, run_id: str, upto_seq: int | None = None
) -> tuple[RunState, set[str]]:
    """``run_id``'s state after its events up to ``upto_seq`` (all when ``None``).

    Starts from the newest usable checkpoint at or before ``upto_seq`` and folds
    only the events after it; a fork without one starts from its parent's state
    at the fork point.

    Returns:
        The state, and the hashes of the checkpoint tree nodes already stored
        (what the next checkpoint need not store again).

    Raises:
        JournalCorrupt: an event cannot be read.
        IllegalTransition: the events do not fold (a damaged journal or a bug).
    """
    limit = LAST_SEQ if upto_seq is None else upto_seq
    record = await journal.latest_checkpoint(run_id, upto_seq)
    if record is not None:
        try:
            if not await journal.read_upto(run_id, record.upto_seq, record.upto_seq - 1):
                raise _Unusable(f"the run has no event at seq {record.upto_seq} (events missing)")
            base, stored = await decode_state(journal, record)
        except _Unusable as exc:
            log.warning(
                "checkpoint of run %s at seq %d not used (%s); folding its events",
                run_id,
                record.upto_seq,
                exc,
            )
        else:
            tail = await journal.read_upto(run_id, limit, after_seq=record.upto_seq)
            return fold(tail, base), stored
    own = await journal.read_upto(run_id, limit)
    if own and isinstance(own[0].data, RunForked):
        parent = own[0].data
        base, _ = await load_state(journal, parent.parent_id, parent.fork_seq)
        return fold(own, base), set()
    return fold(own), set()
