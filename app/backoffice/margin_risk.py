"""Who is below its plan's margin floor, for the accounts at risk: one query finds the few
periods that may be, whatever the number of customers, and margin.floor_breach decides."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.orm import aliased

from app.accounts.mirror import Subscription
from app.backoffice.margin import FloorBreach, floor_breaches
from app.backoffice.margin_data import floors
from app.backoffice.risk import AT_STAKE
from app.billing.margin import period_margins
from app.billing.margin_sums import costly_periods, running_at
from app.billing.models import BillingPeriod
from app.extensions import db

# A running period's predecessor started at most two years ago (a yearly plan's).
LOOKBACK = timedelta(days=2 * 366)


def breaches_at_risk(moment: datetime) -> dict[int, FloorBreach]:
    """Customers with a live subscription whose running period, or else latest ended one, is
    below their plan's floor. SQL keeps the periods whose cost exceeds what the floor allows of
    their recurring charge and floor billing (a superset: overage is revenue too), then of
    those the ones that are their customer's latest running or latest ended period: the
    costly periods are few, so whether one is the latest is asked of them alone, never of every
    customer's periods. margin.floor_breach decides exactly."""
    plan_floors = floors()
    if not plan_floors:
        return {}
    costly = costly_periods(plan_floors, *_recent(BillingPeriod, moment))
    later = aliased(BillingPeriod)
    keys = db.session.scalars(
        select(BillingPeriod.period_key).where(
            BillingPeriod.id.in_(costly),
            exists().where(
                Subscription.customer_id == BillingPeriod.customer_id,
                Subscription.status.in_(AT_STAKE),
            ),
            ~exists().where(
                later.customer_id == BillingPeriod.customer_id,
                *_recent(later, moment),
                running_at(later, moment) == running_at(BillingPeriod, moment),
                or_(
                    later.starts_at > BillingPeriod.starts_at,
                    and_(later.starts_at == BillingPeriod.starts_at, later.id > BillingPeriod.id),
                ),
            ),
        )
    ).all()
    if not keys:
        return {}
    found = floor_breaches(period_margins(period_keys=keys), plan_floors, moment)
    return {breach.period.customer_id: breach for breach in found}


def _recent(period: type[BillingPeriod], moment: datetime) -> tuple[ColumnElement[bool], ...]:
    """Started, and not before the lookback."""
    return period.starts_at <= moment, period.starts_at > moment - LOOKBACK
