"""PostgreSQL: each worker's check memory, kept current by LISTEN/NOTIFY (see the package)."""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import uuid
from collections.abc import Collection
from dataclasses import replace
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Insert, Select, event, func, literal, select
from sqlalchemy.engine import Connection, Engine

from app.entitlements.access import period_key
from app.entitlements.fastpath.check_read import CheckRow
from app.entitlements.fastpath.memory import CheckMemory, Key
from app.entitlements.models import UsageCounter
from app.extensions import db

CHANNEL = "tollgate_standing"
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
# Where a connection notes the only customers whose checks its transaction changes, when it
# knows them (see changes_checks_of_only).
CUSTOMERS = "tollgate.check_cache.customers"

log = logging.getLogger(__name__)


class CheckCache(CheckMemory[CheckRow]):
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
        # This process's commits not yet heard back: when each was sent, and the customers
        # whose checks it changed (None: anyone's).
        self._markers: dict[int, tuple[float, frozenset[int] | None]] = {}
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
        event.listen(engine, "begin", self._begin)
        event.listen(engine, "commit", self._mark_commit)
        event.listen(engine, "rollback", self._forget_marker)

    # The check's side.

    def ticket(self) -> int:
        return self.generation

    def _may_keep(self, ticket: int | None) -> bool:
        return ticket == self.generation and self.live and not self._pending(None)

    def _may_answer_with(self, row: CheckRow) -> bool:
        return not self._pending(row.customer_id)

    def _pending(self, customer_id: int | None) -> bool:
        """Whether a commit of this process's that may have changed the customer's checks
        (with None: anything besides a customer's checks) is not yet heard back."""
        if not self._markers:  # the usual case, asked by every check
            return False
        return any(
            customers is None or customer_id in customers
            for _, customers in list(self._markers.values())
        )

    def _keep(self, key: Key, row: CheckRow, valid_until: datetime | None) -> None:
        super()._keep(key, row, valid_until)
        self._keys_of.setdefault(row.customer_id, set()).add(key)

    def _answers_now(self) -> bool:
        if self._pid != os.getpid():
            self._start()  # first use in this process (gunicorn forks after import)
            return False
        if not self.live:
            return False
        if not self._drain():  # what has arrived by now, before answering from memory
            return False
        if self._markers:
            # A commit that named its customers holds up only their checks (_may_answer_with).
            return self._markers_on_time() and not self._pending(None)
        return True

    # The writers' side: a marker after each of this process's commits.

    def _begin(self, connection: Connection) -> None:
        connection.info.pop(MARKER, None)
        connection.info.pop(CUSTOMERS, None)

    def _mark_commit(self, connection: Connection) -> None:
        customers = connection.info.pop(CUSTOMERS, None)
        if not self.live:
            return
        number = next(self._marker_numbers)
        self._markers[number] = (
            time.monotonic(),
            None if customers is None else frozenset(customers),
        )
        connection.info[MARKER] = number
        driver = connection.connection.driver_connection
        assert driver is not None  # the connection is committing, so it has one
        # In the transaction, after its triggers' notifications: delivered with them on commit.
        driver.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"sync {self._token} {number}"))

    def _forget_marker(self, connection: Connection) -> None:
        connection.info.pop(CUSTOMERS, None)
        number = connection.info.pop(MARKER, None)
        if number is not None:
            self._markers.pop(number, None)

    def _markers_on_time(self) -> bool:
        """False when a marker is overdue: the worker's own commit was never told, so nothing
        else it was told can be trusted either (a pooler that drops LISTEN, a lost message).
        The worker then listens again, from empty."""
        overdue = time.monotonic() - MARKER_TIMEOUT_SECONDS
        if all(sent >= overdue for sent, _ in list(self._markers.values())):
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
        connection broke (the listener then connects again, and the memory starts empty).

        While another thread drains, this one does not wait for it: what that thread applies
        is as good as a notification still on its way, and a commit of this worker's own stays
        marked until its marker has been drained (see _mark_commit). Waiting here held up a
        worker's checks behind one another."""
        if not self._draining.acquire(blocking=False):
            return True
        try:
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
        finally:
            self._draining.release()
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
            elif kind == "u":
                for counter in rest.split(","):
                    customer_id, feature_key, period, used = counter.split(" ")
                    self._counted(int(customer_id), feature_key, period, int(used))
                self.generation += 1
            else:  # "*", or anything this version does not know: drop everything
                self._clear()

    def _counted(self, customer_id: int, feature_key: str, period: str, used: int) -> None:
        """A counter's new value: the customer's cached checks of the feature count it, if
        they are of its period; others of the feature go (the caller holds the lock).

        Counters only grow, and a worker may learn a value twice (the marker's wait aside,
        nothing orders what it is told against what it reads), so an entry keeps the larger."""
        for key in list(self._keys_of.get(customer_id, ())):
            if key[2] != feature_key:
                continue
            entry = self._entries[key]
            row = entry.row
            if row.subscription is None or period_key(row.subscription) != period:
                self._drop(key)
            elif used > row.used:
                self._entries[key] = replace(entry, row=replace(row, used=used))

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


def changes_checks_of_only(customer_ids: Collection[int]) -> None:
    """Note that the session's transaction changes what checks read of these customers and of
    no one else (recording usage: their counters and credits), so that until its commit is
    heard back, this worker's checks of other customers still come from memory. Without it, a
    commit holds up every check of the worker for that time."""
    info = db.session.connection().info
    info.setdefault(CUSTOMERS, set()).update(customer_ids)


COUNTERS_TOLD = "tollgate.counters_told"
# A notification carries at most 8,000 bytes, and a counter's line at most about 360 (its
# customer, feature key of up to 64 characters, period key of up to 255, and count); usually a
# fifth of that.
COUNTERS_PER_NOTIFICATION = 20


def telling_counters(upsert: Insert) -> Select[Any, int]:
    """The counters' ``upsert`` (an INSERT ... ON CONFLICT that adds to ``used``), as one
    statement that also tells every worker's cache the counters' new values once the
    transaction commits: "u customer feature period used,..." (see _apply). The trigger of
    migration 0007 stays silent in the transaction: the counters are named here instead."""
    counters = UsageCounter.__table__
    counted = upsert.returning(
        counters.c.customer_id, counters.c.feature_key, counters.c.period_key, counters.c.used
    ).cte("counted")
    numbered = select(
        counted,
        ((func.row_number().over() - 1) // COUNTERS_PER_NOTIFICATION).label("chunk"),
    ).subquery("numbered")
    line = func.concat_ws(
        " ",
        numbered.c.customer_id,
        numbered.c.feature_key,
        numbered.c.period_key,
        numbered.c.used,
    )
    parts = (
        select(func.concat("u ", func.string_agg(line, literal(","))).label("part"))
        .group_by(numbered.c.chunk)
        .subquery("parts")
    )
    told = select(func.count(func.pg_notify(CHANNEL, parts.c.part))).scalar_subquery()
    return select(func.set_config(COUNTERS_TOLD, "on", True), told)
