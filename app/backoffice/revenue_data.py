"""The queries behind the revenue figures, shared by the page and `flask revenue show`: a fixed
number of them whatever the data, in the catalog's currency."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.sql.elements import ColumnElement

from app.accounts.mirror import Invoice, Subscription, SubscriptionStatus
from app.backoffice.revenue import (
    Month,
    MovementTotal,
    RevenueNow,
    SubscriptionGroup,
    TrialOutcomes,
    month_starts,
    monthly_movements,
    revenue_now,
    trial_conversion,
)
from app.billing.models import RevenueChange, RevenueMovement, RevenueSnapshot
from app.billing.revenue import EARNING
from app.catalog import current_catalog
from app.clock import now
from app.extensions import db

MONTHS = 12


@dataclass(frozen=True)
class RevenueFigures:
    """Everything the revenue page shows."""

    currency: str
    current: RevenueNow
    months: list[Month]
    trials_ended: int
    trials_converted: int
    conversion: Fraction | None
    snapshot_days: int
    last_snapshot: date | None


def revenue_figures() -> RevenueFigures:
    catalog = current_catalog()
    starts = month_starts(now(), MONTHS)
    ended, converted, conversion = trial_conversion(_trial_outcomes(starts))
    days, last = db.session.execute(
        select(func.count(func.distinct(RevenueSnapshot.day)), func.max(RevenueSnapshot.day))
    ).one()
    return RevenueFigures(
        currency=catalog.currency,
        current=revenue_now(_subscription_groups(), list(catalog.tiers)),
        months=monthly_movements(starts, *_opening(starts), _movement_totals(starts)),
        trials_ended=ended,
        trials_converted=converted,
        conversion=conversion,
        snapshot_days=int(days or 0),
        last_snapshot=last,
    )


def _subscription_groups() -> list[SubscriptionGroup]:
    catalog = current_catalog()
    rows = db.session.execute(
        select(
            Subscription.plan_key,
            Subscription.status,
            func.count(),
            func.coalesce(func.sum(Subscription.monthly_amount), 0),
        )
        .where(
            Subscription.status.in_((*EARNING, SubscriptionStatus.TRIALING)),
            func.coalesce(Subscription.currency, catalog.currency) == catalog.currency,
        )
        .group_by(Subscription.plan_key, Subscription.status)
    )
    groups = []
    for plan_key, status, count, amount in rows:
        plan = catalog.plan(plan_key)
        tier = plan.tier if plan is not None else "other"
        groups.append(SubscriptionGroup(tier, plan_key, status.value, count, int(amount)))
    return groups


def _month_index(column: Any, starts: list[Any]) -> ColumnElement[int]:
    """Which of the months a timestamp falls in, as SQL (portable: no date functions)."""
    return case(
        *((column < start, index - 1) for index, start in enumerate(starts[1:], 1)),
        else_=len(starts) - 1,
    )


def _in_currency() -> ColumnElement[bool]:
    return RevenueChange.currency == current_catalog().currency


def _opening(starts: list[Any]) -> tuple[int, int]:
    """MRR and paying customers before the first month: every change before it, summed."""
    joined = case(
        (RevenueChange.movement.in_((RevenueMovement.NEW, RevenueMovement.REACTIVATION)), 1),
        (RevenueChange.movement == RevenueMovement.CHURN, -1),
        else_=0,
    )
    mrr, customers = db.session.execute(
        select(
            func.coalesce(func.sum(RevenueChange.mrr_after - RevenueChange.mrr_before), 0),
            func.coalesce(func.sum(joined), 0),
        ).where(RevenueChange.at < starts[0], _in_currency())
    ).one()
    return int(mrr), int(customers)


def _movement_totals(starts: list[Any]) -> list[MovementTotal]:
    month = _month_index(RevenueChange.at, starts).label("month")
    rows = db.session.execute(
        select(
            month,
            RevenueChange.movement,
            func.sum(RevenueChange.mrr_after - RevenueChange.mrr_before),
            func.count(),
        )
        .where(RevenueChange.at >= starts[0], RevenueChange.at <= now(), _in_currency())
        .group_by(month, RevenueChange.movement)
    )
    return [
        MovementTotal(int(index), RevenueMovement(movement), int(amount), int(count))
        for index, movement, amount, count in rows
    ]


def _trial_outcomes(starts: list[Any]) -> list[TrialOutcomes]:
    month = _month_index(Subscription.trial_end, starts).label("month")
    # A trial converted when its subscription was paid for after it: a paid invoice with an
    # amount. A trial that lapsed, or whose first charge failed, has none (yet).
    converted = (
        select(Invoice.id)
        .where(
            Invoice.stripe_subscription_id == Subscription.stripe_subscription_id,
            Invoice.status == "paid",
            Invoice.amount_paid > 0,
        )
        .exists()
    )
    rows = db.session.execute(
        select(month, func.count(), func.coalesce(func.sum(case((converted, 1), else_=0)), 0))
        .where(Subscription.trial_end >= starts[0], Subscription.trial_end <= now())
        .group_by(month)
    )
    return [TrialOutcomes(int(index), int(ended), int(won)) for index, ended, won in rows]
