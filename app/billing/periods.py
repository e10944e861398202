"""Billing periods as the sync path sees them run: each period's plan and what the subscription
bills for it, kept after the period is over, so that a margin can be worked out for any period
(app/billing/margin.py) from what was billed then, not from what the subscription is now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from app.accounts.mirror import Subscription, SubscriptionStatus
from app.billing.models import BillingPeriod
from app.billing.revenue import months_in
from app.catalog import current_catalog
from app.entitlements.access import period_key
from app.extensions import db


@dataclass(frozen=True)
class PeriodTerms:
    """What a subscription bills for its current period."""

    period_key: str
    plan_key: str
    starts_at: datetime
    ends_at: datetime | None
    trialing: bool
    recurring_amount: int
    currency: str


def current_period_terms(subscription: Subscription) -> PeriodTerms | None:
    """The subscription's running period and what it bills for it (nothing during a trial);
    None before Stripe has given it a period."""
    start = subscription.current_period_start
    if start is None:
        return None
    catalog = current_catalog()
    plan = catalog.plan(subscription.plan_key)
    trialing = subscription.status is SubscriptionStatus.TRIALING
    months = months_in(plan.interval if plan else "month", 1)
    return PeriodTerms(
        period_key=period_key(subscription),
        plan_key=subscription.plan_key,
        starts_at=start,
        ends_at=subscription.current_period_end,
        trialing=trialing,
        recurring_amount=0 if trialing else int(subscription.monthly_amount * months),
        currency=subscription.currency or catalog.currency,
    )


def record_period(subscription: Subscription) -> None:
    """Keep the subscription's running period as it now stands (in the sync's transaction, under
    its customer's lock); an ended subscription's last period ends when it did."""
    terms = current_period_terms(subscription)
    if terms is None:
        return
    row = db.session.scalar(
        select(BillingPeriod).where(BillingPeriod.period_key == terms.period_key)
    )
    if not subscription.is_live:
        ended_at = subscription.ended_at
        if (
            row is not None
            and ended_at is not None
            and (row.ends_at is None or ended_at < row.ends_at)
        ):
            row.ends_at = ended_at
        return
    if row is None:
        row = BillingPeriod(
            customer_id=subscription.customer_id,
            period_key=terms.period_key,
            stripe_subscription_id=subscription.stripe_subscription_id,
            floor_billed=0,
        )
        db.session.add(row)
    row.plan_key = terms.plan_key
    row.starts_at = terms.starts_at
    row.ends_at = terms.ends_at
    row.trialing = terms.trialing
    row.recurring_amount = terms.recurring_amount
    row.currency = terms.currency
