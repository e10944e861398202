"""Fill Tollgate's database with a back office's worth of history, in bulk.

    from bench.volume_data import Volume, fill
    with app.app_context():
        fill(Volume(customers=40, usage_events=2_000))

Customers with two years of subscriptions, invoices, charges, refunds, disputes and the
recurring-revenue changes they made (simulated in bench/volume_history.py, written by
bench/volume_billing.py), a revenue snapshot per plan and day, webhook events and audit entries
(bench/volume_records.py), usage events with their counters, credit pools, lots and ledger
(bench/volume_usage.py). Rows go in with COPY on PostgreSQL and multi-row INSERTs on
SQLite, after whatever the database holds already (ids continue from the largest), so a second
fill adds to the first. Operators are made through the service `flask users create-operator` calls.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import func, select, text

from app.accounts.models import Role
from app.accounts.services import find_user, register
from app.catalog import current_catalog
from app.clock import now as clock_now
from app.extensions import db
from bench import volume_billing, volume_records, volume_usage
from bench.volume_history import Simulator
from bench.volume_writer import Writer, table

OPERATORS = ("ops1@volume.example", "ops2@volume.example")
OPERATOR_PASSWORD = "volume operator password"  # noqa: S105 (throwaway operators of a bench)
# Ids of the tables rows are numbered in (the rest have no id or are not written here).
NUMBERED = [
    "customers",
    "users",
    "subscriptions",
    "invoices",
    "charges",
    "refunds",
    "disputes",
    "revenue_changes",
    "revenue_snapshots",
    "credit_pools",
    "credit_lots",
    "credit_ledger",
    "usage_events",
    "stripe_events",
    "audit_log",
]


@dataclass(frozen=True)
class Volume:
    """How much to write. The first seven customers take one shape each (paying, past due,
    churned, trialing, reactivated, unpaid, free), so a small fill has every kind of row."""

    customers: int = 10_000
    months: int = 24
    usage_events: int = 1_000_000
    usage_days: int = 90
    audit_entries: int = 2_000
    refund_rate: float = 0.01
    dispute_rate: float = 0.002
    webhook_failure_rate: float = 0.01
    seed: int = 1


Report = Callable[[str, int, float], None]
T = TypeVar("T")


def quiet(part: str, rows: int, seconds: float) -> None:
    """A report that says nothing (the tests' fills)."""


def fill(volume: Volume, report: Report = quiet, now: datetime | None = None) -> dict[str, int]:
    """Write ``volume`` into the application's database (in an app context); returns the ids
    the rows start after, per table. ``now`` defaults to the application's clock."""
    now = (now or clock_now()).replace(microsecond=0)
    operators = _operators()
    with db.engine.begin() as connection:
        serials = {
            name: connection.scalar(select(func.coalesce(func.max(table(name).c.id), 0))) or 0
            for name in NUMBERED
        }
    start = dict(serials)
    rng = random.Random(volume.seed)  # noqa: S311 (made-up data, repeatable)
    catalog = current_catalog()
    simulator = Simulator(catalog, now, rng, serials)

    def timed(part: str, write: Callable[[Writer], T]) -> T:
        started = time.perf_counter()
        with db.engine.begin() as connection:
            writer = Writer(connection)
            written = write(writer)
        report(part, writer.rows, time.perf_counter() - started)
        return written

    customers = timed(
        "customers and users",
        lambda writer: volume_billing.write_customers(writer, volume, simulator, now),
    )
    histories, events = timed(
        "subscriptions, invoices, charges, refunds, disputes, revenue changes",
        lambda writer: volume_billing.write_billing(
            writer, volume, simulator, customers, catalog.currency, now
        ),
    )
    timed(
        "revenue snapshots",
        lambda writer: volume_records.write_snapshots(
            writer, volume, histories, now, simulator, catalog.currency
        ),
    )
    timed(
        "usage events, counters, credit pools, lots and ledger",
        lambda writer: volume_usage.write_usage(writer, volume, simulator, histories, now),
    )

    def webhooks_and_audit(writer: Writer) -> None:
        volume_records.write_webhook_events(writer, volume, simulator, events, now)
        volume_records.write_audit(writer, volume, simulator, operators, customers, now)

    timed("webhook events and audit log", webhooks_and_audit)
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            for name in NUMBERED:
                connection.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "  # noqa: S608
                        f"(SELECT coalesce(max(id), 0) + 1 FROM {name}), false)"
                    )
                )
            connection.execute(text("ANALYZE"))
    return start


def _operators() -> list[tuple[int, str]]:
    """The operators audit entries name, made (once) as `flask users create-operator` does."""
    users = []
    for email in OPERATORS:
        user = find_user(email) or register(email, OPERATOR_PASSWORD)
        user.role = Role.OPERATOR
        db.session.flush()
        users.append((user.id, user.email))
    db.session.commit()
    return users
