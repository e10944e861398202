"""The floor: the least any implementation of the two hot calls must do, served like the rest.

bench/bare.py measures what gunicorn and Flask cost without the database. This app adds only
the database work no implementation can skip, on the same tables Tollgate uses, with nothing
else: no API key, no validation, no plans, credits, limits or alerts.

- A check reads the customer by its reference id: one indexed read, on a connection the thread
  keeps, in autocommit.
- A batch of events reads its customers' ids, writes its events in one INSERT, adds their units
  to the counters in one more, and commits; it answers one result per event.
- A single event is written as a batch of one, in a transaction of its own.

What Tollgate measures against this floor is its own cost; what the floor measures against the
bare endpoint is the database's (bench/run.py prints both).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from flask import Flask, Response, jsonify, request
from sqlalchemy.engine import make_url

app = Flask(__name__)

_URL = make_url(os.environ["DATABASE_URL"])
_POSTGRES = _URL.get_backend_name() == "postgresql"
_THREAD = threading.local()


def _connection() -> Any:
    """This thread's connection, opened on first use."""
    connection = getattr(_THREAD, "connection", None)
    if connection is None:
        if _POSTGRES:
            conninfo = _URL.set(drivername="postgresql").render_as_string(hide_password=False)
            connection = psycopg.connect(conninfo)
        else:
            connection = sqlite3.connect(_URL.database or "", timeout=5)
            connection.execute("PRAGMA journal_mode=WAL")
        _THREAD.connection = connection
    return connection


def _sql(statement: str) -> str:
    """psycopg's placeholders, or sqlite3's."""
    return statement if _POSTGRES else statement.replace("%s", "?")


@app.get("/api/v1/client/entitlements/<reference_id>/<feature_key>")
def check(reference_id: str, feature_key: str) -> Response:
    connection = _connection()
    if _POSTGRES:
        connection.autocommit = True
    row = connection.execute(
        _sql("SELECT id FROM customers WHERE reference_id = %s"), (reference_id,)
    ).fetchone()
    # Answered as bench/bare.py answers: the two differ by the read alone.
    return jsonify(
        {
            "data": {
                "customerReferenceId": reference_id,
                "featureKey": feature_key,
                "isAllowed": row is not None,
            }
        }
    )


@app.post("/api/v1/client/events")
def event() -> Response:
    (row,) = _written([json.loads(request.get_data())])
    result = {"status": "recorded", "eventIdempotencyKey": row[1], "usageUnits": row[4]}
    return Response(orjson.dumps({"data": result}), status=201, mimetype="application/json")


@app.post("/api/v1/client/events/batch")
def batch() -> Response:
    rows = _written(json.loads(request.get_data())["events"])
    results = [
        {"status": "recorded", "eventIdempotencyKey": row[1], "usageUnits": row[4]} for row in rows
    ]
    return Response(orjson.dumps({"data": results}), mimetype="application/json")


def _written(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Write ``events`` in a transaction of their own, on the thread's connection."""
    connection = _connection()
    if _POSTGRES:
        connection.autocommit = False
    try:
        return _write(connection, events)
    except Exception:
        connection.rollback()  # so that the thread's next request starts clean
        raise


def _write(connection: Any, events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Write the events and their counters, and commit; the rows written."""
    references = sorted({event["customerReferenceId"] for event in events})
    marks = ", ".join("%s" for _ in references)
    customer_ids = dict(
        connection.execute(
            _sql(f"SELECT reference_id, id FROM customers WHERE reference_id IN ({marks})"),  # noqa: S608 (placeholders only)
            references,
        ).fetchall()
    )
    now = datetime.now(UTC)
    stamp = now if _POSTGRES else now.isoformat(sep=" ")
    rows = [
        (
            customer_ids[event["customerReferenceId"]],
            event["eventIdempotencyKey"],
            event["eventName"],
            event["featureKey"],
            event["usageUnits"],
            "floor",
            stamp,
            stamp,
            orjson.dumps({"units": event["usageUnits"]}).decode(),
        )
        for event in events
    ]
    # Customers in id order: each event's foreign key takes a share lock on its customer, and
    # Tollgate's batches lock customers in id order too, so neither waits for the other in a cycle.
    ordered = sorted(rows, key=lambda row: row[0])
    _insert(
        connection,
        "INSERT INTO usage_events (customer_id, idempotency_key, event_name, feature_key,"
        " units, period_key, occurred_at, recorded_at, result)"
        " SELECT * FROM unnest(%s::int[], %s::text[], %s::text[], %s::text[], %s::bigint[],"
        " %s::text[], %s::timestamptz[], %s::timestamptz[], %s::json[])"
        " ON CONFLICT DO NOTHING",
        "INSERT INTO usage_events (customer_id, idempotency_key, event_name, feature_key,"
        " units, period_key, occurred_at, recorded_at, result)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        ordered,
    )
    used: dict[tuple[int, str], int] = {}
    for row in rows:
        used[row[0], row[3]] = used.get((row[0], row[3]), 0) + row[4]
    # In key order, so that two batches never wait for each other's counters in a cycle.
    counters = [(*key, units) for key, units in sorted(used.items())]
    _insert(
        connection,
        "INSERT INTO usage_counters (customer_id, feature_key, period_key, used)"
        " SELECT customer_id, feature_key, 'floor', used"
        " FROM unnest(%s::int[], %s::text[], %s::bigint[]) AS t(customer_id, feature_key, used)"
        " ORDER BY customer_id, feature_key"
        " ON CONFLICT (customer_id, feature_key, period_key)"
        " DO UPDATE SET used = usage_counters.used + excluded.used",
        "INSERT INTO usage_counters (customer_id, feature_key, period_key, used)"
        " VALUES (?, ?, 'floor', ?)"
        " ON CONFLICT (customer_id, feature_key, period_key)"
        " DO UPDATE SET used = usage_counters.used + excluded.used",
        counters,
    )
    connection.commit()
    return rows


def _insert(connection: Any, postgres: str, sqlite: str, rows: list[tuple[Any, ...]]) -> None:
    """All rows in one statement on PostgreSQL (a column array each), an executemany on SQLite."""
    if _POSTGRES:
        connection.execute(postgres, [list(column) for column in zip(*rows, strict=True)])
    else:
        connection.executemany(sqlite, rows)
