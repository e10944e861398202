"""The entitlement check's one query: the customer, its current subscription, its usage counter
for that subscription's period and its unexpired credits for the feature, in one round trip."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    String,
    bindparam,
    case,
    cast,
    func,
    literal,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from app.accounts.models import Customer
from app.billing.models import LIVE_STATUSES, Subscription, SubscriptionStatus
from app.entitlements.models import CreditLot, CreditPool, UsageCounter
from app.extensions import db


class epoch_seconds(FunctionElement[int]):
    """Whole Unix seconds of a timestamp column, as ``int(datetime.timestamp())`` counts them."""

    type = BigInteger()
    inherit_cache = True


@compiles(epoch_seconds, "sqlite")
def _sqlite_epoch_seconds(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLAlchemy keeps SQLite timestamps as UTC text, 'YYYY-MM-DD HH:MM:SS.ffffff'; %s truncates.
    return f"CAST(strftime('%s', {compiler.process(element.clauses, **kw)}) AS INTEGER)"


@compiles(epoch_seconds, "postgresql")
def _postgresql_epoch_seconds(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    # EXTRACT gives fractional seconds and CAST rounds them: floor, as int() does in Python.
    return f"CAST(FLOOR(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})) AS BIGINT)"


def period_key_sql() -> ColumnElement[str]:
    """access.period_key() of the subscriptions row, in SQL (tests hold the two to agree)."""
    start = func.coalesce(epoch_seconds(Subscription.current_period_start), 0)
    return Subscription.stripe_subscription_id + ":" + cast(start, String)


@dataclass(frozen=True)
class StandingRow:
    """What the check needs to know of one customer, read at once."""

    customer_id: int
    subscription: Subscription | None
    used: int
    credits: int


@cache
def _statement(
    by_reference: bool, with_credits: bool
) -> Select[int, int, str, str, SubscriptionStatus, datetime | None, datetime | None, int, int]:
    """Built once per shape, so a check pays neither for building it nor for its cache key."""
    current_subscription = (
        select(Subscription.id)
        .where(Subscription.customer_id == Customer.id)
        # The live subscription, else the latest one, as access.pick_current() chooses.
        .order_by(
            case((Subscription.status.in_(LIVE_STATUSES), 0), else_=1), Subscription.id.desc()
        )
        .limit(1)
        .correlate(Customer)
        .scalar_subquery()
    )
    credits: ColumnElement[int] = literal(0, BigInteger)
    if with_credits:
        credits = (
            select(func.coalesce(func.sum(CreditLot.remaining), 0))
            .join(CreditPool, CreditLot.pool_id == CreditPool.id)
            .where(
                CreditPool.customer_id == Customer.id,
                CreditPool.key.in_(bindparam("pool_keys", expanding=True)),
                CreditLot.remaining > 0,
                CreditLot.expires_at.is_(None) | (CreditLot.expires_at > bindparam("at")),
            )
            .correlate(Customer)
            .scalar_subquery()
        )
    customer = (
        Customer.reference_id == bindparam("reference_id")
        if by_reference
        else Customer.id == bindparam("customer_id")
    )
    return (
        select(
            Customer.id,
            Subscription.id,
            Subscription.stripe_subscription_id,
            Subscription.plan_key,
            Subscription.status,
            Subscription.current_period_start,
            Subscription.current_period_end,
            func.coalesce(UsageCounter.used, 0),
            credits,
        )
        .select_from(Customer)
        .outerjoin(Subscription, Subscription.id == current_subscription)
        .outerjoin(
            UsageCounter,
            (UsageCounter.customer_id == Customer.id)
            & (UsageCounter.feature_key == bindparam("feature_key"))
            & (UsageCounter.period_key == period_key_sql()),
        )
        .where(customer)
    )


def standing_row(
    customer_id: int | None,
    reference_id: str | None,
    feature_key: str,
    pool_keys: Collection[str],
    at: datetime,
) -> StandingRow | None:
    """The customer (by id, else by reference id) and its standing for a feature at ``at``."""
    params: dict[str, Any] = {"feature_key": feature_key, "at": at, "pool_keys": list(pool_keys)}
    if customer_id is not None:
        params["customer_id"] = customer_id
    else:
        params["reference_id"] = reference_id
    statement = _statement(customer_id is None, bool(pool_keys))
    row = db.session.connection().execute(statement, params).one_or_none()
    if row is None:
        return None
    found, subscription_id, stripe_id, plan_key, status, start, end, used, credits = row
    subscription = None
    if subscription_id is not None:
        # A detached copy of the row, so the model's own predicates judge it.
        subscription = Subscription(
            id=subscription_id,
            stripe_subscription_id=stripe_id,
            plan_key=plan_key,
            status=status,
            current_period_start=start,
            current_period_end=end,
        )
    return StandingRow(found, subscription, int(used), int(credits))
