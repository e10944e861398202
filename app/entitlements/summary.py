"""What the account page shows of usage and credit pools."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.accounts.models import Customer
from app.catalog import CreditGrant, MeteredAllowance, Plan, current_catalog
from app.clock import now
from app.entitlements.access import current_subscription, period_key, period_usage
from app.entitlements.credits import balances
from app.entitlements.ledger import burn_order


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


def _plan_of(customer: Customer) -> tuple[Plan | None, str, datetime | None]:
    """The live plan, its period's key, and when it renews (None when it is set to end)."""
    subscription = current_subscription(customer.id)
    if subscription is None or not subscription.is_live:
        return None, period_key(None), None
    plan = current_catalog().plan(subscription.plan_key)
    renews_at = None if subscription.cancel_at_period_end else subscription.current_period_end
    return plan, period_key(subscription), renews_at


def usage_summary(customer: Customer) -> list[FeatureUsage]:
    """The current plan's metered features and their use this period."""
    plan, period, _ = _plan_of(customer)
    if plan is None:
        return []
    catalog = current_catalog()
    rows = []
    for key, grant in plan.features.items():
        if not isinstance(grant, MeteredAllowance):
            continue
        used = period_usage(customer.id, key, period)
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
    plan, _, renews_at = _plan_of(customer)
    grants = {grant.pool: grant for grant in plan.credits} if plan else {}
    views = []
    for pool in balances(customer.id):
        lots = burn_order([pool.id], now())
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
