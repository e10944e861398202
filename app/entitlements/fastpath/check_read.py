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
    BindParameter,
    ColumnElement,
    Select,
    String,
    bindparam,
    case,
    cast,
    func,
    literal,
    null,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from app.accounts.api_keys import ApiKey
from app.accounts.mirror import LIVE_STATUSES, NEWEST_FIRST, Subscription, SubscriptionRead
from app.accounts.models import Customer
from app.entitlements.errors import InvalidApiKey
from app.entitlements.fastpath.memory import check_cache
from app.entitlements.fastpath.prepared import PreparedRead
from app.entitlements.models import CreditLot, CreditPool, UsageCounter
from app.extensions import db
from app.metrics import CHECK_CACHE_HITS, CHECK_CACHE_MISSES


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
class CheckRow:
    """What the check needs to know of one customer, read at once."""

    customer_id: int
    subscription: SubscriptionRead | None
    used: int
    credits: int


def _listed(name: str, values: Collection[str]) -> BindParameter[Any]:
    """``IN`` values fixed when the statement is built, rendered into its SQL."""
    return bindparam(name, sorted(values), expanding=True, literal_execute=True)


@cache
def _statement(by_reference: bool, pool_keys: frozenset[str], keyed: bool) -> PreparedRead:
    """Built and compiled once per shape and set of pools, so a check pays for neither.

    ``keyed``: the row is the API key's, found by its hash and outer-joined to the customer, so
    the API's hottest call checks its key and the customer in one round trip (no row: no key).
    """
    current_subscription = (
        select(Subscription.id)
        .where(Subscription.customer_id == Customer.id)
        # The live subscription, else the latest one, as access.pick_current() chooses.
        .order_by(
            case((Subscription.status.in_(_listed("live", LIVE_STATUSES)), 0), else_=1),
            *NEWEST_FIRST,
        )
        .limit(1)
        .correlate(Customer)
        .scalar_subquery()
    )
    credits: ColumnElement[int] = literal(0, BigInteger)
    first_expiry: ColumnElement[Any] = null()
    if pool_keys:
        counted = (
            select(CreditLot.remaining)
            .join(CreditPool, CreditLot.pool_id == CreditPool.id)
            .where(
                CreditPool.customer_id == Customer.id,
                CreditPool.key.in_(_listed("pool_keys", pool_keys)),
                CreditLot.remaining > 0,
                CreditLot.expires_at.is_(None)
                | (CreditLot.expires_at > bindparam("at", required=False)),
            )
            .correlate(Customer)
        )
        credits = counted.with_only_columns(
            func.coalesce(func.sum(CreditLot.remaining), 0)
        ).scalar_subquery()
        if keyed:
            # Until when the sum holds: a cached check (check_cache.py) stops counting then.
            first_expiry = counted.with_only_columns(
                func.min(CreditLot.expires_at)
            ).scalar_subquery()
    customer = (
        Customer.reference_id == bindparam("reference_id", required=False)
        if by_reference
        else Customer.id == bindparam("customer_id", required=False)
    )
    columns = (
        Customer.id,
        Subscription.id,
        Subscription.stripe_subscription_id,
        Subscription.plan_key,
        Subscription.status,
        Subscription.current_period_start,
        Subscription.current_period_end,
        func.coalesce(UsageCounter.used, 0),
        credits,
        first_expiry,
    )
    statement: Select[*tuple[Any, ...]]
    if keyed:
        statement = (
            select(ApiKey.id, *columns)
            .select_from(ApiKey)
            .outerjoin(Customer, customer)
            .where(ApiKey.key_hash == bindparam("key_hash", required=False))
            .where(ApiKey.revoked_at.is_(None))
        )
    else:
        statement = select(null(), *columns).select_from(Customer).where(customer)
    statement = statement.outerjoin(
        Subscription, Subscription.id == current_subscription
    ).outerjoin(
        UsageCounter,
        (UsageCounter.customer_id == Customer.id)
        & (UsageCounter.feature_key == bindparam("feature_key", required=False))
        & (UsageCounter.period_key == period_key_sql()),
    )
    return PreparedRead(statement)


def read_check_row(
    customer_id: int | None,
    reference_id: str | None,
    feature_key: str,
    pool_keys: Collection[str],
    at: datetime,
    key_hash: str | None = None,
) -> CheckRow | None:
    """The customer (by id, else by reference id) and its standing for a feature at ``at``;
    None when there is no such customer. With ``key_hash``, InvalidApiKey unless it is the hash
    of an unrevoked API key, checked in the same query; what that query finds may come from the
    worker's check cache."""
    cache = check_cache()
    if (
        cache is None
        or key_hash is None
        or reference_id is None
        # A read that would see this transaction's uncommitted writes is not for keeping.
        or (db.session.registry.has() and db.session().in_transaction())
    ):
        return _read(customer_id, reference_id, feature_key, pool_keys, at, key_hash)[0]
    key = (key_hash, reference_id, feature_key)
    cached: CheckRow | None = cache.get(key, at)
    if cached is not None:
        CHECK_CACHE_HITS.inc()
        return cached
    CHECK_CACHE_MISSES.inc()
    ticket = cache.ticket()
    found, valid_until = _read(customer_id, reference_id, feature_key, pool_keys, at, key_hash)
    if found is not None:
        cache.put(ticket, key, found, valid_until)
    return found


def _read(
    customer_id: int | None,
    reference_id: str | None,
    feature_key: str,
    pool_keys: Collection[str],
    at: datetime,
    key_hash: str | None,
) -> tuple[CheckRow | None, datetime | None]:
    """read_check_row() from the database, with the time its credits' sum holds until."""
    params: dict[str, Any] = {"feature_key": feature_key}
    if key_hash is not None:
        params["key_hash"] = key_hash
    if pool_keys:
        params["at"] = at
    if customer_id is not None:
        params["customer_id"] = customer_id
    else:
        params["reference_id"] = reference_id
    keyed = key_hash is not None
    row = _statement(customer_id is None, frozenset(pool_keys), keyed).first(**params)
    if row is None and keyed:
        raise InvalidApiKey()
    if row is None or row[1] is None:
        return None, None
    _key, found, subscription_id, stripe_id, plan_key, status, start, end, used, credits, expiry = (
        row
    )
    subscription = None
    if subscription_id is not None:
        subscription = SubscriptionRead(stripe_id, plan_key, status, start, end)
    return CheckRow(found, subscription, int(used), int(credits)), expiry
