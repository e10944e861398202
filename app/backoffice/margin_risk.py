"""Who is below its plan's margin floor, for the accounts at risk: one query finds the few
periods that may be, whatever the number of customers, and margin.floor_breach decides."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Numeric, case, cast, exists, func, or_, select

from app.accounts.mirror import Subscription
from app.backoffice.margin import FloorBreach, floor_breaches
from app.backoffice.margin_data import floors
from app.backoffice.risk import AT_STAKE
from app.billing.margin import period_margins
from app.billing.models import BillingPeriod
from app.entitlements.costs import NANOS
from app.entitlements.models import UsageCost
from app.extensions import db

# A running period's predecessor started at most two years ago (a yearly plan's).
LOOKBACK = timedelta(days=2 * 366)


def breaches_at_risk(moment: datetime) -> dict[int, FloorBreach]:
    """Customers with a live subscription whose running period, or else latest ended one, is
    below their plan's floor. SQL keeps, of each customer's latest running and latest ended
    period, those whose cost exceeds what the floor allows of their recurring charge and floor
    billing (a superset: overage is revenue too); margin.floor_breach decides exactly."""
    plan_floors = floors()
    if not plan_floors:
        return {}
    started = BillingPeriod.starts_at <= moment
    running = or_(BillingPeriod.ends_at.is_(None), BillingPeriod.ends_at > moment)
    latest = (
        select(
            BillingPeriod.customer_id,
            BillingPeriod.period_key,
            BillingPeriod.plan_key,
            BillingPeriod.trialing,
            (BillingPeriod.recurring_amount + BillingPeriod.floor_billed).label("billed"),
            func.row_number()
            .over(
                partition_by=(BillingPeriod.customer_id, case((running, 1), else_=0)),
                order_by=(BillingPeriod.starts_at.desc(), BillingPeriod.id.desc()),
            )
            .label("latest"),
        )
        .where(started, BillingPeriod.starts_at > moment - LOOKBACK)
        .subquery()
    )
    # cost / billed > 1 - floor, in whole numbers: floor = n / d gives cost * d > billed * (d - n).
    ratios = {key: floor.as_integer_ratio() for key, floor in plan_floors.items()}
    denominator = case({key: d for key, (_, d) in ratios.items()}, value=latest.c.plan_key)
    allowed = case({key: d - n for key, (n, d) in ratios.items()}, value=latest.c.plan_key)
    cost = func.sum(UsageCost.nanos)
    live = exists().where(
        Subscription.customer_id == latest.c.customer_id, Subscription.status.in_(AT_STAKE)
    )
    keys = db.session.scalars(
        select(latest.c.period_key)
        .join(UsageCost, UsageCost.period_key == latest.c.period_key)
        .where(
            latest.c.latest == 1,
            latest.c.plan_key.in_(plan_floors),
            latest.c.trialing.is_(False),
            live,
        )
        .group_by(latest.c.period_key, latest.c.plan_key, latest.c.billed)
        .having(cost * denominator > cast(latest.c.billed, Numeric) * allowed * NANOS)
    ).all()
    if not keys:
        return {}
    found = floor_breaches(period_margins(period_keys=keys), plan_floors, moment)
    return {breach.period.customer_id: breach for breach in found}
