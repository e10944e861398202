"""SQLite persistence: each Stripe object is a JSON row; plus clock, idempotency, deliveries."""

from __future__ import annotations

import json
import secrets
import sqlite3
import string
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    id TEXT PRIMARY KEY, type TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS objects_type_seq ON objects (type, seq);
-- `put` numbers a new row after the highest seq of all: one index lookup, not a table scan.
CREATE INDEX IF NOT EXISTS objects_seq ON objects (seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, status INTEGER NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, endpoint_id TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS used_keys (
    kind TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (kind, key));
CREATE TABLE IF NOT EXISTS restricted_keys (key TEXT PRIMARY KEY, permissions TEXT NOT NULL);
"""
# Rows a list reads at a time: a page of 100 and one more, with room for rows filtered out.
_WALK_BATCH = 128
# The next rows past a list position (a seq): newest first, or towards the newest (True).
_WALK = {
    False: "SELECT seq, data FROM objects WHERE type = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
    True: "SELECT seq, data FROM objects WHERE type = ? AND seq > ? ORDER BY seq ASC LIMIT ?",
}
_SEQ_BOUNDS = {False: 2**63 - 1, True: -1}

# The count of writes of watched types (see Store.watch).
_WRITES_KEY = "watched_writes"

_ID_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    """A Stripe-looking id such as `cus_Qx3...`."""
    return prefix + "_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def _use_wal(db: sqlite3.Connection) -> None:
    """Readers (the clock, a page's GET) go on while another process's step writes. The mode
    is the file's, kept once set; setting it answers "database is locked" at once, without
    waiting, while another process opens the same new file (two gunicorn workers booting), so
    it is tried again for a few seconds."""
    for attempt in range(50):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            time.sleep(0.1)


class Store:
    """Objects keyed by id, listed newest first; callers serialise access with one lock."""

    def __init__(self, path: str) -> None:
        # Several processes share the file (gunicorn's workers, the worker, a command): a
        # writer waits for another's transaction, which a long clock move can make seconds.
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=60)
        _use_wal(self._db)
        self._db.executescript(_SCHEMA)
        self._db.commit()
        self._depth = 0
        self._watched: frozenset[str] = frozenset()
        # The ids of watched objects written while `noting_writes` runs (None: not noting).
        self._noted: set[str] | None = None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic step, across processes too: it holds the file's write lock from its first
        read (so no other process's step interleaves with it, as Stripe's own API is
        serialised per object). Commit on success; roll back (objects and events) on an
        exception unless it is marked `keep_changes`. A step inside another is part of it."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        if self._db.in_transaction:
            self._db.commit()
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException as exc:
            if getattr(exc, "keep_changes", False):
                self._db.commit()
            else:
                self._db.rollback()
            raise
        finally:
            self._depth = 0
        self._db.commit()

    def get(self, object_id: str) -> dict[str, Any] | None:
        """The stored object, or None."""
        row = self._db.execute("SELECT data FROM objects WHERE id = ?", (object_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def watch(self, object_types: Iterable[str]) -> None:
        """Count every write of objects of these types (and every delete) in `writes()`, so a
        reader can tell that nothing of theirs changed since it last looked."""
        self._watched = frozenset(object_types)

    def writes(self) -> int:
        """Writes of watched types so far, by every process sharing the file."""
        return int(self.meta(_WRITES_KEY, "0"))

    @contextmanager
    def noting_writes(self) -> Iterator[set[str]]:
        """A set that collects the id of every watched object written or deleted (by this
        connection) while the block runs."""
        noted: set[str] = set()
        self._noted = noted
        try:
            yield noted
        finally:
            self._noted = None

    def _note(self, object_id: str) -> None:
        self.add_to_meta(_WRITES_KEY, 1)
        if self._noted is not None:
            self._noted.add(object_id)

    def set_meta(self, key: str, value: str) -> None:
        """Set a persisted setting."""
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Insert or replace; an object keeps its list position across updates."""
        if obj["object"] in self._watched:
            self._note(obj["id"])
        data = json.dumps(obj)
        updated = self._db.execute(
            "UPDATE objects SET data = ? WHERE id = ?", (data, obj["id"])
        ).rowcount
        if not updated:
            self._db.execute(
                "INSERT INTO objects (id, type, seq, data) VALUES (?, ?, "
                "(SELECT COALESCE(MAX(seq), 0) + 1 FROM objects), ?)",
                (obj["id"], obj["object"], data),
            )
        return obj

    def delete(self, object_id: str) -> None:
        """Forget an object."""
        if self._watched:
            self._note(object_id)
        self._db.execute("DELETE FROM objects WHERE id = ?", (object_id,))

    def all(self, object_type: str) -> list[dict[str, Any]]:
        """Every object of a type, newest first as Stripe lists them."""
        rows = self._db.execute(
            "SELECT data FROM objects WHERE type = ? ORDER BY seq DESC", (object_type,)
        )
        return [json.loads(r[0]) for r in rows]

    def all_in_state(
        self, object_type: str, field: str, values: Iterable[str]
    ) -> list[tuple[int, dict[str, Any]]]:
        """(list position, object) of every object of a type whose top-level `field` is one of
        `values`, newest first. SQLite reads the field, so the rest are never decoded."""
        rows = self._db.execute(
            "SELECT seq, data FROM objects WHERE type = ? AND json_extract(data, ?) IN "
            "(SELECT value FROM json_each(?)) ORDER BY seq DESC",
            (object_type, f"$.{field}", json.dumps(list(values))),
        )
        return [(int(seq), json.loads(data)) for seq, data in rows]

    def walk(
        self, object_type: str, after: int | None = None, *, towards_newest: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Objects of a type in list order, newest first (or oldest first, `towards_newest`),
        from just past the list position `after` (a seq). Rows are read a batch at a time and
        decoded one at a time, so a reader that stops early pays for what it read, not the table.
        """
        bound = _SEQ_BOUNDS[towards_newest] if after is None else after
        while True:
            rows = self._db.execute(
                _WALK[towards_newest], (object_type, bound, _WALK_BATCH)
            ).fetchall()
            for _, data in rows:
                yield json.loads(data)
            if len(rows) < _WALK_BATCH:
                return
            bound = rows[-1][0]

    def position(self, object_id: str, object_type: str) -> int | None:
        """An object's place in its type's list (its seq), or None if there is no such object."""
        row = self._db.execute(
            "SELECT seq FROM objects WHERE id = ? AND type = ?", (object_id, object_type)
        ).fetchone()
        return int(row[0]) if row else None

    def meta(self, key: str, default: str) -> str:
        """A persisted setting such as the clock offset."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def first_use(self, kind: str, key: str) -> bool:
        """Note ``key`` as used (a meter event's identifier); whether it was new. One indexed
        insert, however many keys are kept."""
        inserted = self._db.execute(
            "INSERT OR IGNORE INTO used_keys (kind, key) VALUES (?, ?)", (kind, key)
        )
        return inserted.rowcount == 1

    def save_restricted_key(self, key: str, permissions: Mapping[str, str]) -> None:
        """Keep a restricted key in the file, so every process sharing it accepts the key."""
        self._db.execute(
            "INSERT INTO restricted_keys (key, permissions) VALUES (?, ?)",
            (key, json.dumps(dict(permissions))),
        )

    def restricted_key(self, key: str) -> dict[str, str] | None:
        """A restricted key's permissions (resource group to "read" or "write"), or None."""
        row = self._db.execute(
            "SELECT permissions FROM restricted_keys WHERE key = ?", (key,)
        ).fetchone()
        return dict(json.loads(row[0])) if row else None

    def add_to_meta(self, key: str, amount: int) -> None:
        """Add to a whole-number setting in one statement (no read that another can overtake)."""
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + excluded.value",
            (key, amount),
        )

    def idempotent_result(self, key: str) -> tuple[str, int, bytes] | None:
        """(fingerprint, status, body) of the first request made with this key."""
        row = self._db.execute(
            "SELECT fingerprint, status, body FROM idempotency WHERE key = ?", (key,)
        ).fetchone()
        return (row[0], row[1], row[2].encode()) if row else None

    def save_idempotent_result(self, key: str, fingerprint: str, status: int, body: bytes) -> None:
        """Remember a response so a retry with the same key replays it."""
        self._db.execute(
            "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?)",
            (key, fingerprint, status, body.decode()),
        )

    def queue_delivery(self, event_id: str, endpoint_id: str, at: float) -> None:
        """Schedule one webhook delivery attempt."""
        self._db.execute(
            "INSERT INTO deliveries (event_id, endpoint_id, next_attempt) VALUES (?, ?, ?)",
            (event_id, endpoint_id, at),
        )

    def pending_deliveries(self, due_before: float | None) -> list[tuple[int, str, str, int]]:
        """(id, event_id, endpoint_id, attempts) of undelivered rows, oldest first."""
        rows = self._db.execute(
            "SELECT id, event_id, endpoint_id, attempts FROM deliveries WHERE delivered = 0 "
            "AND (? IS NULL OR next_attempt <= ?) ORDER BY id",
            (due_before, due_before),
        )
        return [tuple(r) for r in rows]

    def record_delivery(self, delivery_id: int, delivered: bool, next_attempt: float) -> None:
        """Mark a delivery done, or count a failed attempt and schedule the next."""
        self._db.execute(
            "UPDATE deliveries SET delivered = ?, attempts = attempts + 1, next_attempt = ? "
            "WHERE id = ?",
            (int(delivered), next_attempt, delivery_id),
        )
