"""Fill Tollgate's database with a back office's worth of history, in bulk.

    from bench.volume_data import Volume, fill
    with app.app_context():
        fill(Volume(customers=40, usage_events=2_000))

Customers with two years of subscriptions, invoices, charges, refunds, disputes and the
recurring-revenue changes they made (simulated in bench/volume_history.py, written by
bench/volume_billing.py), a revenue snapshot per plan and day, webhook events and audit entries
(bench/volume_records.py), usage events with their counters, credit pools, lots and ledger
(bench/volume_usage.py), billing periods and what usage cost (bench/volume_margin.py). Rows
go in with COPY on PostgreSQL and multi-row INSERTs on SQLite, after whatever the database holds
already (ids continue from the largest), so a second fill adds to the first. Operators are made
through the service `flask users create-operator` calls.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import func, insert, literal, select, text

from app.accounts.models import Role
from app.accounts.services import find_user, register
from app.catalog import Catalog, Plan, current_catalog
from app.clock import now as clock_now
from app.extensions import db
from bench import volume_billing, volume_margin, volume_records, volume_usage
from bench.volume_history import History, Simulator, add_months
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
    serials = _serials()
    start = dict(serials)
    rng = random.Random(volume.seed)  # noqa: S311 (made-up data, repeatable)
    catalog = current_catalog()
    simulator = Simulator(catalog, now, rng, serials)
    timed = _timer(report)
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

    def margins(writer: Writer) -> None:
        volume_margin.write_periods(writer, histories, catalog, now)
        volume_margin.write_costs(writer.connection, catalog, start["usage_events"])

    timed("billing periods, and usage costs summed from the events", margins)

    def webhooks_and_audit(writer: Writer) -> None:
        volume_records.write_webhook_events(writer, volume, simulator, events, now)
        volume_records.write_audit(writer, volume, simulator, operators, customers, now)

    timed("webhook events and audit log", webhooks_and_audit)
    _after_bulk_writes()
    return start


def _serials() -> dict[str, int]:
    """The largest id of each numbered table: the fill's rows are numbered after it."""
    with db.engine.begin() as connection:
        return {
            name: connection.scalar(select(func.coalesce(func.max(table(name).c.id), 0))) or 0
            for name in NUMBERED
        }


def _timer(report: Report) -> Callable[[str, Callable[[Writer], T]], T]:
    """Runs one part of a fill in a transaction of its own and reports its rows and time."""

    def timed(part: str, write: Callable[[Writer], T]) -> T:
        started = time.perf_counter()
        with db.engine.begin() as connection:
            writer = Writer(connection)
            written = write(writer)
        report(part, writer.rows, time.perf_counter() - started)
        return written

    return timed


def _after_bulk_writes() -> None:
    """On PostgreSQL, sequences continue after the rows written with their ids, and the planner
    learns the tables' new sizes."""
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


BUSY_EMAIL = "busy@volume.example"
BUSY_PASSWORD = "a whole year of heavy usage"  # noqa: S105 (a throwaway customer of a bench)


class SteadySimulator(Simulator):
    """Simulates customers who pay for one plan every period from the day they sign up: no
    trial, no change of plan, no churn."""

    def __init__(
        self, catalog: Catalog, plan: Plan, now: datetime, serials: dict[str, int]
    ) -> None:
        super().__init__(catalog, now, random.Random(1), serials)  # noqa: S311 (made-up data)
        self.plan = plan

    def customer(self, created: datetime, shape: int) -> History:
        """One subscription to the plan, billed period after period until now."""
        history = History()
        subscription = self._start(history, created, self.plan, 1)
        self._run(history, subscription, churn=0.0, changes=False)
        return history


def fill_busy_customer(
    usage_events: int,
    months: int = 12,
    plan_key: str = "pro_monthly",
    email: str = BUSY_EMAIL,
    report: Report = quiet,
    now: datetime | None = None,
) -> str:
    """One customer who logs in as ``email`` (with BUSY_PASSWORD), on ``plan_key`` for
    ``months`` billing periods with their invoices and charges, and ``usage_events`` usage
    events over them with their counters, credit pools, lots and ledger, the billable overage
    they left in the outbox, and the periods' records and costs; written as fill() writes them.
    Returns its reference id."""
    now = (now or clock_now()).replace(microsecond=0)
    catalog = current_catalog()
    plan = catalog.plans[plan_key]
    user = find_user(email) or register(email, BUSY_PASSWORD)
    customer = user.customer
    assert customer is not None
    created = add_months(now, -months) + timedelta(days=10)
    customer.stripe_customer_id = f"cus_busy{customer.id}"
    customer.created_at = created
    db.session.commit()
    row = volume_billing.CustomerRow(customer.id, created, "US", "visa", f"cus_busy{customer.id}")
    serials = _serials()
    start = dict(serials)
    simulator = SteadySimulator(catalog, plan, now, serials)
    volume = Volume(customers=1, usage_events=usage_events, usage_days=(now - created).days + 1)
    timed = _timer(report)
    histories, _ = timed(
        "the busy customer's subscription, invoices and charges",
        lambda writer: volume_billing.write_billing(
            writer, volume, simulator, [row], catalog.currency, now
        ),
    )
    timed(
        "its usage events, counters, credit pools, lots and ledger",
        lambda writer: volume_usage.write_usage(writer, volume, simulator, histories, now),
    )

    def margins_and_overage(writer: Writer) -> None:
        volume_margin.write_periods(writer, histories, catalog, now)
        volume_margin.write_costs(writer.connection, catalog, start["usage_events"])
        _write_overage_outbox(writer, customer.id, start["usage_events"])

    timed("its billing periods, usage costs and overage outbox", margins_and_overage)
    _after_bulk_writes()
    return customer.reference_id


def _write_overage_outbox(writer: Writer, customer_id: int, after: int) -> None:
    """The billable overage of the customer's events numbered after ``after``, one outbox row
    each, as recording writes it (their stored results say which and how much)."""
    events = table("usage_events")
    outbox = table("overage_outbox")
    overage = events.c.result[2].as_integer()
    billable = events.c.result[3].as_boolean()
    writer.connection.execute(
        insert(outbox).from_select(
            ["usage_event_id", "customer_id", "event_name", "period_key", "units", "occurred_at"],
            select(
                events.c.id,
                events.c.customer_id,
                literal("tollgate_") + events.c.feature_key,
                events.c.period_key,
                overage,
                events.c.occurred_at,
            ).where(events.c.customer_id == customer_id, events.c.id > after, billable),
        )
    )
    writer.rows += (
        writer.connection.scalar(
            select(func.count()).select_from(outbox).where(outbox.c.customer_id == customer_id)
        )
        or 0
    )
