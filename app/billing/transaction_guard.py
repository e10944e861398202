"""The guard that keeps Stripe out of database transactions (on in tests, ``STRIPE_CALL_GUARD``).

A call to Stripe can take seconds. Made while the session holds a write transaction, it would
hold SQLite's one write lock, or a PostgreSQL connection and its row locks, for that long, and
every writer (then the pool, then the entitlement checks) would queue behind it. So Tollgate
reads what it needs, commits, calls Stripe, and writes the answer in a short transaction of its
own (docs/architecture.md). With the guard on, the gateway refuses a call made inside a write
transaction, so the whole test suite checks that rule on every path it drives.

Writes are noticed on the connection, from the SQL itself: ORM flushes, the recording's own SQL
and the row locks of ``SELECT ... FOR UPDATE`` (SQLite's ``BEGIN IMMEDIATE``) alike.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from app.extensions import db

_WRITING = "tollgate.writing"
_WRITE_STATEMENT = re.compile(
    r"\s*(INSERT|UPDATE|DELETE|BEGIN\s+IMMEDIATE)\b|.*\bFOR\s+(NO\s+KEY\s+)?UPDATE\b",
    re.IGNORECASE | re.DOTALL,
)


class StripeCalledInTransaction(RuntimeError):
    """Stripe was called while the database session held a write transaction."""


def track_writes(engine: Engine) -> None:
    """Mark each connection that wrote or locked until its transaction ends."""

    def mark(connection: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if _WRITE_STATEMENT.match(statement):
            connection.info[_WRITING] = True

    def clear(connection: Connection) -> None:
        connection.info.pop(_WRITING, None)

    def clear_record(_dbapi_connection: Any, record: Any) -> None:
        record.info.pop(_WRITING, None)

    event.listen(engine, "before_cursor_execute", mark)
    event.listen(engine, "commit", clear)
    event.listen(engine, "rollback", clear)
    # A connection given back to the pool is rolled back there, without the events above.
    event.listen(engine.pool, "checkin", clear_record)


def refuse_inside_write_transaction(call: str) -> None:
    """Raise StripeCalledInTransaction if the session has written, locked or changed anything."""
    session = db.session()
    changed = bool(session.new or session.deleted) or any(
        session.is_modified(instance) for instance in session.dirty
    )
    wrote = session.in_transaction() and session.connection().info.get(_WRITING, False)
    if changed or wrote:
        raise StripeCalledInTransaction(
            f"Stripe call {call} made inside a write transaction: commit or roll back first"
        )
