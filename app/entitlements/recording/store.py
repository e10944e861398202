"""The batch's SQL: a statement per table for all its rows, on both dialects."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Insert, Select, bindparam, delete, func, insert, select, true
from sqlalchemy.dialects import postgresql, sqlite

from app.accounts.mirror import NEWEST_FIRST, Subscription, SubscriptionRead
from app.catalog.stripe_names import meter_event_name
from app.entitlements.access import pick_current
from app.entitlements.alerts import save_alerts
from app.entitlements.fastpath.postgres_cache import telling_counters
from app.entitlements.ledger import LotBalance, Movement, expiry, write_movements
from app.entitlements.models import (
    LedgerKind,
    OverageOutbox,
    UsageCost,
    UsageCounter,
    UsageEvent,
)
from app.entitlements.recording.state import Batch, StoredEvent
from app.entitlements.results import UsageEventInput, UsageResult, stored_cost
from app.entitlements.sql import (
    as_recordset,
    insert_rows,
    is_postgresql,
    one_of,
    pair_in,
    pair_rows,
    pairs,
    recordset,
    statement_per_dialect,
)
from app.extensions import db

# What apply_event puts in each event's row.
EVENT_COLUMNS = (
    "customer_id",
    "idempotency_key",
    "period_key",
    "occurred_at",
    "result",
    "event_name",
    "feature_key",
    "units",
    "cost_input",
    "cost_nanos",
    "cost_source",
)


def _recorded_at() -> BindParameter[datetime]:
    """The batch's time, bound once as ``at``: when its events were recorded, and when they
    occurred unless they say."""
    return bindparam("at", type_=UsageEvent.__table__.c.recorded_at.type)


@statement_per_dialect
def _insert_events_statement() -> Insert:
    """PostgreSQL: the batch's events from one recordset, skipping keys recorded before."""
    rows = recordset(UsageEvent, EVENT_COLUMNS).subquery("batch")
    columns = [
        func.coalesce(rows.c.occurred_at, _recorded_at()) if name == "occurred_at" else rows.c[name]
        for name in EVENT_COLUMNS
    ]
    return (
        postgresql.insert(UsageEvent)
        .from_select([*EVENT_COLUMNS, "recorded_at"], select(*columns, _recorded_at()))
        .on_conflict_do_nothing(index_elements=[UsageEvent.customer_id, UsageEvent.idempotency_key])
        .returning(UsageEvent.id, UsageEvent.customer_id, UsageEvent.idempotency_key)
    )


@statement_per_dialect
def _event_ids() -> Select[int, int, str]:
    return select(UsageEvent.id, UsageEvent.customer_id, UsageEvent.idempotency_key).where(
        pair_in(UsageEvent.customer_id, UsageEvent.idempotency_key, "events")
    )


def insert_events(batch: Batch) -> list[int] | None:
    """Insert the batch's events, a statement for all: their ids, in order; or None, having
    inserted nothing, when some key was recorded before (PostgreSQL; SQLite reads them first)."""
    connection = db.session.connection()
    if is_postgresql():
        # One INSERT ... SELECT from a JSON recordset for the whole batch, returning each row's id.
        inserted = connection.execute(
            _insert_events_statement(), {**as_recordset(batch.rows, EVENT_COLUMNS), "at": batch.at}
        ).all()
        if len(inserted) < len(batch.rows):
            if inserted:
                connection.execute(
                    delete(UsageEvent).where(one_of(UsageEvent.id, "ids")),
                    {"ids": [event_id for event_id, _, _ in inserted]},
                )
            return None
    else:
        # SQLite's executemany is cheap; then the ids by (customer, key), which is unique.
        at = batch.at
        insert_rows(
            insert(UsageEvent),
            [
                {**row, "occurred_at": row["occurred_at"] or at, "recorded_at": at}
                for row in batch.rows
            ],
        )
        keys = [(row["customer_id"], row["idempotency_key"]) for row in batch.rows]
        inserted = connection.execute(_event_ids(), pairs("events", keys)).all()
    id_of = {(customer_id, key): event_id for event_id, customer_id, key in inserted}
    return [id_of[row["customer_id"], row["idempotency_key"]] for row in batch.rows]


def write_batch(batch: Batch, ids: list[int], due: list[LotBalance]) -> None:
    """Write the rest of the batch, its events inserted: a statement per table for all rows."""
    write_movements(
        [expiry(lot) for lot in due]
        + [
            Movement.of(lot, LedgerKind.DEDUCT, -amount, f"usage:{ids[index]}:{lot.id}")
            for index, lot, amount in batch.deductions
        ]
    )
    add_to_counters(batch.counted)
    insert_rows(
        insert(OverageOutbox),
        [
            {
                "usage_event_id": ids[index],
                "customer_id": batch.rows[index]["customer_id"],
                "event_name": meter_event_name(batch.rows[index]["feature_key"]),
                "period_key": batch.rows[index]["period_key"],
                "units": units,
                "occurred_at": batch.rows[index]["occurred_at"] or batch.at,
            }
            for index, units in batch.overage
        ],
    )
    save_alerts(batch.alerts, batch.at)
    if batch.costs:
        add_to_costs(batch.costs)


def add_to_counters(counted: dict[tuple[int, str, str], int]) -> None:
    """Add the batch's units to each period's counter, creating it on first use."""
    rows = [
        {"customer_id": customer_id, "feature_key": feature, "period_key": period, "used": used}
        # In key order, so that writers always take the counters' row locks in one order.
        for (customer_id, feature, period), used in sorted(counted.items())
    ]
    if is_postgresql():
        db.session.connection().execute(
            _add_to_counters_telling(), as_recordset(rows, COUNTER_COLUMNS)
        )
    else:
        insert_rows(_add_to_counters_statement(), rows)


COUNTER_COLUMNS = ("customer_id", "feature_key", "period_key", "used")
COST_COLUMNS = ("customer_id", "feature_key", "period_key", "model", "nanos", "events", "unpriced")


def add_to_costs(costs: dict[tuple[int, str, str, str], list[int]]) -> None:
    """Add the batch's costs to each period's totals by feature and model."""
    rows = [
        dict(zip(COST_COLUMNS, (*key, *totals), strict=True))
        # In key order, as the counters, so that writers take the rows' locks in one order.
        for key, totals in sorted(costs.items())
    ]
    if is_postgresql():
        db.session.connection().execute(_add_to_costs_statement(), as_recordset(rows, COST_COLUMNS))
    else:
        insert_rows(_add_to_costs_statement(), rows)


@statement_per_dialect
def _add_to_costs_statement() -> Insert:
    """As _add_to_counters_statement, for the cost totals."""
    costs = UsageCost.__table__
    key = [costs.c.customer_id, costs.c.feature_key, costs.c.period_key, costs.c.model]
    totals = ("nanos", "events", "unpriced")
    if is_postgresql():
        batch = postgresql.insert(UsageCost).from_select(
            COST_COLUMNS, recordset(UsageCost, COST_COLUMNS)
        )
        return batch.on_conflict_do_update(
            index_elements=key, set_={name: costs.c[name] + batch.excluded[name] for name in totals}
        )
    each = sqlite.insert(UsageCost)
    return each.on_conflict_do_update(
        index_elements=key, set_={name: costs.c[name] + each.excluded[name] for name in totals}
    )


@statement_per_dialect
def _add_to_counters_telling() -> Select[Any, int]:
    """PostgreSQL: an upsert that adds ``used`` to each period's counter of a recordset at
    once, telling every worker's check cache the counters' new values."""
    counters = UsageCounter.__table__
    batch = postgresql.insert(UsageCounter).from_select(
        COUNTER_COLUMNS, recordset(UsageCounter, COUNTER_COLUMNS)
    )
    return telling_counters(
        batch.on_conflict_do_update(
            index_elements=[counters.c.customer_id, counters.c.feature_key, counters.c.period_key],
            set_={"used": counters.c.used + batch.excluded.used},
        )
    )


@statement_per_dialect
def _add_to_counters_statement() -> Insert:
    """SQLite: an upsert that adds ``used`` to a period's counter, per row of an executemany."""
    counters = UsageCounter.__table__
    key = [counters.c.customer_id, counters.c.feature_key, counters.c.period_key]
    each = sqlite.insert(UsageCounter)
    return each.on_conflict_do_update(
        index_elements=key, set_={"used": counters.c.used + each.excluded.used}
    )


@statement_per_dialect
def _stored_statement() -> Select[*tuple[Any, ...]]:
    return select(
        UsageEvent.id,
        UsageEvent.customer_id,
        UsageEvent.idempotency_key,
        UsageEvent.event_name,
        UsageEvent.feature_key,
        UsageEvent.units,
        UsageEvent.cost_input,
        UsageEvent.result,
        UsageEvent.cost_nanos,
        UsageEvent.cost_source,
    ).where(pair_in(UsageEvent.customer_id, UsageEvent.idempotency_key, "events"))


def stored_events(
    events: Sequence[tuple[int, UsageEventInput]],
) -> dict[tuple[int, str], StoredEvent]:
    wanted = {(customer_id, event.idempotency_key) for customer_id, event in events}
    rows = db.session.connection().execute(_stored_statement(), pairs("events", wanted))
    stored = {}
    for (
        event_id,
        customer_id,
        key,
        event_name,
        feature_key,
        units,
        cost_input,
        result,
        cost_nanos,
        cost_source,
    ) in rows:
        body = {
            "event_name": event_name,
            "feature_key": feature_key,
            "units": units,
            "cost_input": cost_input,
        }
        first = UsageResult.from_stored(
            result,
            (event_id, key, feature_key, units),
            stored_cost(cost_nanos, cost_source, cost_input),
        )
        stored[customer_id, key] = StoredEvent(body, first)
    return stored


@statement_per_dialect
def _subscriptions_statement() -> Select[*tuple[Any, ...]]:
    return (
        select(
            Subscription.customer_id,
            Subscription.stripe_subscription_id,
            Subscription.plan_key,
            Subscription.status,
            Subscription.current_period_start,
            Subscription.current_period_end,
        )
        .where(one_of(Subscription.customer_id, "customer_ids"))
        .order_by(*NEWEST_FIRST)
    )


def current_subscriptions(customer_ids: list[int]) -> dict[int, SubscriptionRead | None]:
    by_customer: dict[int, list[SubscriptionRead]] = defaultdict(list)
    # On the session's connection, not session.execute(): the ORM's loading layer would cost
    # this read several times its query.
    for customer_id, stripe_id, plan_key, status, start, end in (
        db.session.connection()
        .execute(_subscriptions_statement(), {"customer_ids": customer_ids})
        .all()
    ):
        by_customer[customer_id].append(SubscriptionRead(stripe_id, plan_key, status, start, end))
    return {customer_id: pick_current(by_customer[customer_id]) for customer_id in customer_ids}


@statement_per_dialect
def _counters_statement() -> Select[int, str, str, int]:
    columns = (
        UsageCounter.customer_id,
        UsageCounter.feature_key,
        UsageCounter.period_key,
        UsageCounter.used,
    )
    if not is_postgresql():
        return select(*columns).where(
            pair_in(UsageCounter.customer_id, UsageCounter.period_key, "periods")
        )
    # Each (customer, period) looked up by the counters' key, the way SQLite finds them. As a
    # join or IN, the planner read and hashed every counter of every period instead: 5.8 ms for a
    # batch against 20,000 counters, 3.7 ms this way, and the table grows with every period. The
    # OFFSET keeps PostgreSQL from folding the lookup back into a join.
    wanted = pair_rows(UsageCounter.customer_id, UsageCounter.period_key, "periods")
    counters = (
        select(*columns)
        .where(
            UsageCounter.customer_id == wanted.c.first,
            UsageCounter.period_key == wanted.c.second,
        )
        .offset(0)
        .lateral("counters")
    )
    return select(*counters.c).select_from(wanted).join(counters, true())


def counters_of(periods: dict[int, str]) -> dict[tuple[int, str, str], int]:
    """The customers' counters of their current periods (``periods``)."""
    # By (customer, period) pairs: two separate sets made PostgreSQL compare every counter it
    # found with each of the batch's thousand periods.
    rows = (
        db.session.connection()
        .execute(_counters_statement(), pairs("periods", list(periods.items())))
        .all()
    )
    return {(customer_id, feature, period): used for customer_id, feature, period, used in rows}
