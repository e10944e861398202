"""The API's entitlement checks, answered from memory on PostgreSQL and kept current by it.

A check's one query costs more than the whole of the rest of the call: on PostgreSQL it alone
held checks below 60% of a bare Flask endpoint's throughput. Each worker keeps what the query
read (the customer's subscription, counter and credits, and that the API key was valid) for
each (key, customer, feature) it was asked about, and drops it when it may have changed:

- Triggers (migration 0007) notify the ``tollgate_standing`` channel when a transaction that
  changed a customer, its subscriptions, credit pools or lots commits, naming the customers;
  any change to an API key drops everything. They fire whatever code or process made the
  change: the API, webhooks, the CLI, a psql session. Usage counters change with every event:
  Tollgate's recording names their customers itself (``tell_counters_changed``), and a change
  to them from anywhere else drops everything.
- Each worker listens on a connection of its own. Before a check answers from memory, it
  applies whatever notifications have arrived; a thread applies them every 50 ms besides, so
  that they never pile up in a worker that only records usage.
- A worker's own commits send a marker through the same channel: until it has arrived (after
  the commit's own notifications), this worker's checks read the database. A caller that
  records usage and then checks on the same worker always sees its usage.
- On another worker, a check may answer from memory for as long as the notification takes to
  arrive: about 0.1 ms on an idle machine here, more under load. Recording usage never reads
  this cache, so limits and credits are enforced exactly; a check is a forecast either way,
  since usage may be recorded between the check and the use.
- Read entries are stored only if no notification arrived while the read ran, so a read that
  raced a commit is never kept; an entry that counted credits lasts until the first of them
  expires. While the worker is not listening (at start, after losing the connection, or when
  one of its own markers is 5 s late), every check reads the database, and the memory starts
  empty once it listens again.

SQLite has no notifications, but each connection can tell whether any other has committed
since it last looked (``PRAGMA data_version``, about 3 µs). There each worker keeps its checks'
reads only while no commit has happened anywhere since they were read: a dedicated connection
asks before every answer from memory, and any commit, by any process, drops them all. A check
on SQLite never lags a write, on any worker.

``TOLLGATE_CHECK_CACHE=off`` makes every check read the database.
"""

from __future__ import annotations

import itertools
import logging
import os
import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import psycopg
from flask import Flask, current_app
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine

from app.extensions import db

if TYPE_CHECKING:
    from app.entitlements.standing import StandingRow

CHANNEL = "tollgate_standing"
EXTENSION = "tollgate.check_cache"
# A bound on memory (an entry takes about a kilobyte): past it, the oldest entries go first.
MAX_ENTRIES = 100_000
# A marker arrives within a millisecond or so; one this late means the worker is not being
# told what commits (or its commit failed without a rollback), and it stops trusting its memory.
MARKER_TIMEOUT_SECONDS = 5.0
RECONNECT_SECONDS = 1.0
# How often the listener reads what has arrived when no check has. A check reads it first
# anyway, so this only keeps the socket from filling; waking on every notification instead
# cost batch-heavy workers their GIL several times per batch.
DRAIN_SECONDS = 0.05

# Where a connection notes the marker its transaction's commit sent.
MARKER = "tollgate.check_cache.marker"

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (API key hash, customer reference id, feature key)


@dataclass(frozen=True, slots=True)
class _Entry:
    row: StandingRow
    valid_until: datetime | None


class CheckMemory(ABC):
    """One worker's cached check reads, at most MAX_ENTRIES of them (the oldest go first).
    What keeps them current is the database's: see CheckCache and SqliteCheckCache."""

    def __init__(self) -> None:
        self._entries: dict[Key, _Entry] = {}
        self._lock = threading.Lock()
        self.hits = 0  # checks answered from memory

    def __len__(self) -> int:
        return len(self._entries)

    @abstractmethod
    def get(self, key: Key, at: datetime) -> StandingRow | None:
        """The row cached for ``key``, if it may be used at ``at``; None to read the database."""

    @abstractmethod
    def ticket(self) -> int | None:
        """Taken before reading: hand it back to ``put``."""

    @abstractmethod
    def put(
        self, ticket: int | None, key: Key, row: StandingRow, valid_until: datetime | None
    ) -> None:
        """Keep ``row``, read for ``key`` after ``ticket`` was taken, unless anything changed."""

    @abstractmethod
    def stop(self) -> None:
        """Let go of what keeps the memory current (the tests' servers stop with their app)."""

    def _lookup(self, key: Key, at: datetime) -> StandingRow | None:
        entry = self._entries.get(key)
        if entry is None or (entry.valid_until is not None and at >= entry.valid_until):
            return None
        self.hits += 1
        return entry.row

    def _keep(self, key: Key, row: StandingRow, valid_until: datetime | None) -> None:
        """Store an entry (the caller holds the lock)."""
        if len(self._entries) >= MAX_ENTRIES:
            self._drop(next(iter(self._entries)))  # the oldest
        self._entries[key] = _Entry(row, valid_until)

    def _drop(self, key: Key) -> None:
        """Drop one entry (the caller holds the lock)."""
        del self._entries[key]

    def _clear(self) -> None:
        """Drop every entry (the caller holds the lock)."""
        self._entries.clear()


class CheckCache(CheckMemory):
    """PostgreSQL: one worker's cached check reads, and the thread that keeps them current."""

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        self._keys_of: dict[int, set[Key]] = {}
        # Bumped by every notification: a read stores what it read only if none came meanwhile.
        self.generation = 0
        self.live = False
        self._markers: dict[int, float] = {}
        self._marker_numbers = itertools.count()
        self._pid: int | None = None
        # Names this process's cache in its markers (tests run several apps in one process).
        self._token = ""
        self._stop = threading.Event()
        # The listening connection, read by whichever thread drains it, one at a time.
        self._connection: psycopg.Connection[Any] | None = None
        self._draining = threading.Lock()
        # A connection's marker is its last transaction's: the next one starts without it, and
        # leaves the marker itself pending until it arrives.
        event.listen(engine, "begin", lambda connection: connection.info.pop(MARKER, None))
        event.listen(engine, "commit", self._mark_commit)
        event.listen(engine, "rollback", self._forget_marker)

    # The check's side.

    def get(self, key: Key, at: datetime) -> StandingRow | None:
        if not self._usable():
            return None
        return self._lookup(key, at)

    def ticket(self) -> int:
        return self.generation

    def put(
        self, ticket: int | None, key: Key, row: StandingRow, valid_until: datetime | None
    ) -> None:
        with self._lock:
            if ticket != self.generation or not self.live or self._markers:
                return
            self._keep(key, row, valid_until)
            self._keys_of.setdefault(row.customer_id, set()).add(key)

    def _usable(self) -> bool:
        if self._pid != os.getpid():
            self._start()  # first use in this process (gunicorn forks after import)
            return False
        if not self.live:
            return False
        if not self._drain():  # what has arrived by now, before answering from memory
            return False
        if self._markers:
            return self._markers_on_time() and not self._markers
        return True

    # The writers' side: a marker after each of this process's commits.

    def _mark_commit(self, connection: Connection) -> None:
        if not self.live:
            return
        number = next(self._marker_numbers)
        self._markers[number] = time.monotonic()
        connection.info[MARKER] = number
        driver = connection.connection.driver_connection
        assert driver is not None  # the connection is committing, so it has one
        # In the transaction, after its triggers' notifications: delivered with them on commit.
        driver.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"sync {self._token} {number}"))

    def _forget_marker(self, connection: Connection) -> None:
        number = connection.info.pop(MARKER, None)
        if number is not None:
            self._markers.pop(number, None)

    def _markers_on_time(self) -> bool:
        """False when a marker is overdue: the worker's own commit was never told, so nothing
        else it was told can be trusted either (a pooler that drops LISTEN, a lost message).
        The worker then listens again, from empty."""
        overdue = time.monotonic() - MARKER_TIMEOUT_SECONDS
        if all(sent >= overdue for sent in list(self._markers.values())):
            return True
        with self._draining:
            self._connection = None  # the listener sees it gone, and connects again
        self._lost(TimeoutError("a commit's notification never arrived"))
        return False

    # The listener.

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._token = uuid.uuid4().hex
            self.live = False
            self._clear()
            self._markers.clear()
            self._stop.clear()
            threading.Thread(target=self._listen, name="tollgate-check-cache", daemon=True).start()

    def stop(self) -> None:
        """Stop listening; the thread ends when it next looks up from waiting, within 50 ms."""
        self._stop.set()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                connection = psycopg.connect(self._conninfo, autocommit=True)
                connection.execute(f"LISTEN {CHANNEL}")
            except psycopg.Error as exc:
                self._lost(exc)
                self._stop.wait(RECONNECT_SECONDS)
                continue
            with self._draining:
                self._connection = connection
            # Listening now: whatever changes from here on is told. Start from empty.
            self._reset(live=True)
            while not self._stop.wait(DRAIN_SECONDS) and self._drain():
                pass
            with self._draining:
                self._connection = None
            connection.close()
        self._reset(live=False)

    def _drain(self) -> bool:
        """Apply the notifications that have arrived, without waiting for any; False when the
        connection broke (the listener then connects again, and the memory starts empty)."""
        with self._draining:
            connection = self._connection
            if connection is None:
                return False
            try:
                pgconn = connection.pgconn
                pgconn.consume_input()  # what the socket holds; raises if the connection broke
                while (notification := pgconn.notifies()) is not None:
                    self._apply(notification.extra.decode())
            except Exception as exc:  # whatever it was, stop trusting the memory
                self._connection = None
                self._lost(exc)
                return False
        return True

    def _lost(self, exc: Exception) -> None:
        was_live = self.live
        self._reset(live=False)
        # Once when it stops, not at every attempt to listen again while the database is down.
        (log.warning if was_live else log.debug)(
            "Entitlement check cache not listening (%s); checks read the database until it is",
            type(exc).__name__,
        )

    def _reset(self, *, live: bool) -> None:
        with self._lock:
            self._clear()
            self._markers.clear()
            self.live = live

    def _apply(self, payload: str) -> None:
        kind, _, rest = payload.partition(" ")
        if kind == "sync":
            token, _, number = rest.partition(" ")
            if token == self._token:
                self._markers.pop(int(number), None)
            return
        with self._lock:
            if kind == "c":
                for customer_id in rest.split(","):
                    for key in self._keys_of.pop(int(customer_id), ()):
                        self._entries.pop(key, None)
                self.generation += 1
            else:  # "*", or anything this version does not know: drop everything
                self._clear()

    def _drop(self, key: Key) -> None:
        customer_id = self._entries.pop(key).row.customer_id
        keys = self._keys_of.get(customer_id)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._keys_of[customer_id]

    def _clear(self) -> None:
        super()._clear()
        self._keys_of.clear()
        self.generation += 1


class SqliteCheckCache(CheckMemory):
    """SQLite: one worker's cached check reads, kept while no commit has happened anywhere.

    The version is ``PRAGMA data_version`` on a connection of the worker's own that never
    writes, so that every commit is another connection's, this worker's included; SQLite
    changes it as soon as a commit is made, with no message to wait for.
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path
        self._watcher: sqlite3.Connection | None = None
        self._watching = threading.Lock()  # a sqlite3 connection serves one thread at a time
        self._pid: int | None = None
        self._stopped = False
        self._warned = False
        # The version the entries were read at.
        self._version: int | None = None

    def get(self, key: Key, at: datetime) -> StandingRow | None:
        version = self._current()
        if version is None:
            return None
        if version != self._version:
            with self._lock:
                self._clear()
                self._version = version
            return None
        return self._lookup(key, at)

    def ticket(self) -> int | None:
        # The version a check's get() just saw (a miss follows one): any version seen before
        # the read will do, as put() explains, and this one costs no second question.
        return self._version

    def put(
        self, ticket: int | None, key: Key, row: StandingRow, valid_until: datetime | None
    ) -> None:
        with self._lock:
            # Kept with the entries of the version read before it. A read began after that, so
            # it is of that version or a later one; if later, the next check sees the version
            # move on and drops them all, this one with them.
            if ticket is not None and ticket == self._version:
                self._keep(key, row, valid_until)

    def stop(self) -> None:
        with self._watching:
            self._stopped = True
            if self._watcher is not None:
                self._watcher.close()
                self._watcher = None

    def _current(self) -> int | None:
        """The database's version now; None when it cannot be told (then nothing is kept)."""
        with self._watching:
            if self._stopped:
                return None
            try:
                if self._pid != os.getpid():
                    # First use in this process (gunicorn forks after import): a connection of
                    # its own, never one inherited.
                    self._pid = os.getpid()
                    # Read-write, never create: a path that missed the database would watch a
                    # new empty file whose version never moves.
                    self._watcher = sqlite3.connect(
                        f"file:{quote(self._path)}?mode=rw",
                        uri=True,
                        isolation_level=None,
                        check_same_thread=False,
                    )
                    self._version = None
                if self._watcher is None:
                    return None
                row = self._watcher.execute("PRAGMA data_version").fetchone()
            except sqlite3.Error as exc:
                # Once, not at every check.
                (log.debug if self._warned else log.warning)(
                    "Entitlement check cache cannot read SQLite's version (%s);"
                    " checks read the database",
                    exc,
                )
                self._warned = True
                return None
        return int(row[0])


# Migration 0007: the counters' trigger stays silent in a transaction that sets this.
COUNTERS_TOLD = "tollgate.counters_told"
# A notification carries at most 8,000 bytes.
IDS_PER_NOTIFICATION = 500


def tell_counters_changed(customer_ids: Collection[int]) -> None:
    """Name the customers whose usage counters this transaction changes, for every worker's
    cache once it commits (PostgreSQL). One statement: cheaper than the trigger's transition
    tables, which made a batch's counter upsert take 11 ms instead of 7."""
    ordered = sorted(customer_ids)
    parts = [
        "c " + ",".join(map(str, ordered[start : start + IDS_PER_NOTIFICATION]))
        for start in range(0, len(ordered), IDS_PER_NOTIFICATION)
    ]
    db.session.connection().execute(
        _TELL, {"channel": CHANNEL, "told": COUNTERS_TOLD, "parts": parts}
    )


_TELL = text(
    "SELECT set_config(:told, 'on', true), count(pg_notify(:channel, part))"
    " FROM unnest(CAST(:parts AS text[])) AS part"
)


def init_check_cache(app: Flask) -> None:
    """Give the app its check cache, unless TOLLGATE_CHECK_CACHE is off or the database is an
    SQLite database in memory (which no second connection can watch)."""
    if not app.config["CHECK_CACHE"]:
        return
    with app.app_context():
        engine = db.engine
    if engine.dialect.name == "postgresql":
        app.extensions[EXTENSION] = CheckCache(engine)
    elif engine.dialect.name == "sqlite":
        path = engine.url.database
        # A file by its path; not a database in memory, nor one named by a URI of its own.
        if path and path != ":memory:" and "uri" not in engine.url.query:
            app.extensions[EXTENSION] = SqliteCheckCache(os.path.abspath(path))


def check_cache() -> CheckMemory | None:
    """The current app's check cache, if it has one."""
    cache: CheckMemory | None = current_app.extensions.get(EXTENSION)
    return cache


def stop_check_cache(app: Flask) -> None:
    """Stop what keeps the app's check cache current, if it has one."""
    cache: CheckMemory | None = app.extensions.get(EXTENSION)
    if cache is not None:
        cache.stop()
