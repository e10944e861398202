"""What the account page shows of usage and credit pools."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from app.accounts.mirror import Subscription
from app.accounts.models import Customer
from app.catalog import CreditGrant, MeteredAllowance, Plan, current_catalog
from app.clock import now
from app.entitlements.access import current_subscription, period_key
from app.entitlements.credits import balances
from app.entitlements.ledger import burn_order
from app.entitlements.models import CreditLot, UsageCounter
from app.extensions import db


@dataclass(frozen=True)
class FeatureUsage:
    """A metered feature's use this period against its limit or included allowance."""

    feature_key: str
    name: str
    units: str
    used: int
    limit: int | None
    included: int
    unlimited: bool
    # Of the limit, else of the included allowance; None when neither bounds it.
    percent: int | None


@dataclass(frozen=True)
class PoolView:
    """A credit pool as a customer reads it."""

    key: str
    denomination: str
    balance: int
    next_expiry: datetime | None
    expiring: int
    renews_amount: int | None
    renews_at: datetime | None
    rollover_words: str


def _plan_of(subscription: Subscription | None) -> tuple[Plan | None, str, datetime | None]:
    """The live plan, its period's key, and when it renews (None when it is set to end)."""
    if subscription is None or not subscription.is_live:
        return None, period_key(None), None
    plan = current_catalog().plan(subscription.plan_key)
    renews_at = None if subscription.cancel_at_period_end else subscription.current_period_end
    return plan, period_key(subscription), renews_at


def usage_summary(customer: Customer) -> list[FeatureUsage]:
    """The current plan's metered features and their use this period."""
    return feature_usage(customer.id, current_subscription(customer.id))


def feature_usage(customer_id: int, subscription: Subscription | None) -> list[FeatureUsage]:
    """usage_summary(), for a caller that has read the customer's current subscription: its
    plan's metered features and their use this period, read from the period's counters."""
    plan, period, _ = _plan_of(subscription)
    if plan is None:
        return []
    catalog = current_catalog()
    counters = select(UsageCounter.feature_key, UsageCounter.used).where(
        UsageCounter.customer_id == customer_id, UsageCounter.period_key == period
    )
    counted = dict(db.session.execute(counters).all())
    rows = []
    for key, grant in plan.features.items():
        if not isinstance(grant, MeteredAllowance):
            continue
        used = counted.get(key, 0)
        bound = None if grant.unlimited else grant.limit or grant.included or None
        rows.append(
            FeatureUsage(
                feature_key=key,
                name=catalog.features[key].name,
                units=catalog.features[key].units,
                used=used,
                limit=grant.limit,
                included=grant.included,
                unlimited=grant.unlimited,
                percent=min(used * 100 // bound, 100) if bound else None,
            )
        )
    return rows


def rollover_words(grant: CreditGrant) -> str:
    """The rollover policy in a sentence."""
    units = grant.denomination.replace("_", " ")
    if grant.rollover == "full":
        return f"Unused {units} roll over."
    if grant.rollover == "capped":
        return f"Up to {grant.rollover_cap or 0:,} unused {units} roll over."
    if grant.rollover == "expire":
        periods = grant.expire_after_periods or 1
        return f"Each grant lasts {periods} billing period{'s' if periods != 1 else ''}."
    return f"Unused {units} expire at the end of the period."


def _future_words(grant: CreditGrant | None, renews_at: datetime | None) -> str:
    """What becomes of the pool's plan credits: rolled over, or gone with a plan that ends."""
    if grant is None:
        return "Does not renew."
    if renews_at is None:
        return "Your plan ends with this period, and its credits with it."
    return rollover_words(grant)


def pool_summary(customer: Customer) -> list[PoolView]:
    """The customer's pools: balance, what expires next, and what the plan renews."""
    return credit_pools(customer.id, current_subscription(customer.id))


def credit_pools(customer_id: int, subscription: Subscription | None) -> list[PoolView]:
    """pool_summary(), for a caller that has read the customer's current subscription."""
    plan, _, renews_at = _plan_of(subscription)
    grants = {grant.pool: grant for grant in plan.credits} if plan else {}
    pools = balances(customer_id)
    lots_of: dict[int, list[CreditLot]] = {pool.id: [] for pool in pools}
    for lot in burn_order(lots_of, now()):
        lots_of[lot.pool_id].append(lot)
    views = []
    for pool in pools:
        lots = lots_of[pool.id]
        expiring = [lot for lot in lots if lot.expires_at is not None]
        next_expiry = expiring[0].expires_at if expiring else None
        grant = grants.get(pool.key)
        views.append(
            PoolView(
                key=pool.key,
                denomination=pool.denomination,
                balance=sum(lot.remaining for lot in lots),
                next_expiry=next_expiry,
                expiring=sum(lot.remaining for lot in expiring if lot.expires_at == next_expiry),
                renews_amount=grant.amount if grant and renews_at else None,
                renews_at=renews_at if grant else None,
                rollover_words=_future_words(grant, renews_at),
            )
        )
    return views
