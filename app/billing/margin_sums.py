"""Margins of many billing periods at once, for the back office: margin.py's figures added up in
SQL by month and plan, and the few periods a page lists picked out in SQL, so that no reader
loads every period to add them up or to find the lowest.

One definition: a MarginSum adds up what margin.PeriodMargin says of each period (revenue =
recurring charge + overage at the plan's prices + what the floor billed; cost = usage_costs),
and tests/billing/test_margin_sums.py holds the SQL equal to margin.py over the same rows.
Overage is priced per month and plan from its units summed per meter, which equals the sum of
each period's overage whenever a unit price (price ÷ per) is a decimal of at most 28 digits
(Stripe's unit amounts have at most 12 decimal places).

Revenue's parts are never negative (Stripe bills no negative charge, overage units and prices
are positive), which the pickers below rely on to keep every period that can qualify.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    ColumnElement,
    Float,
    Numeric,
    Select,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import aliased

from app.billing.margin import PeriodMargin, costs_by_period, overage_amount, periods_where
from app.billing.models import BillingPeriod
from app.catalog import MeteredAllowance, current_catalog
from app.catalog.stripe_names import meter_event_name
from app.entitlements.costs import NANOS
from app.entitlements.models import OverageOutbox, UsageCost
from app.extensions import db

# Relative slack on a ratio computed in floating point: far above its rounding error, so that
# a candidate is never lost to it; margin.py then decides exactly.
SLACK = 1e-9


@dataclass(frozen=True)
class MarginSum:
    """Billing periods of one plan that started in one month (an index into the months'
    starts), added up as margin.PeriodMargin figures each."""

    month: int
    plan_key: str
    periods: int
    recurring: int
    overage: Decimal
    floor_billed: int
    cost_nanos: int
    events: int
    unpriced: int

    @classmethod
    def of(cls, period: PeriodMargin, month: int = 0) -> MarginSum:
        """One period alone."""
        return cls(
            month=month,
            plan_key=period.plan_key,
            periods=1,
            recurring=period.recurring,
            overage=period.overage,
            floor_billed=period.floor_billed,
            cost_nanos=period.cost_nanos,
            events=period.events,
            unpriced=period.unpriced,
        )

    @property
    def revenue(self) -> Decimal:
        return self.recurring + self.overage + self.floor_billed


def margin_sums(starts: Sequence[datetime]) -> list[MarginSum]:
    """The periods that started from ``starts[0]`` on, added up by month (a period counts in
    the last month that starts at or before it) and plan. Three queries."""
    month = _month_index(starts, 0, len(starts) - 1)
    which = periods_where(None, starts[0], None, None)
    periods = (
        select(
            month.label("month"),
            BillingPeriod.plan_key,
            BillingPeriod.recurring_amount,
            BillingPeriod.floor_billed,
        )
        .where(*which)
        .subquery()
    )
    totals = db.session.execute(
        select(
            periods.c.month,
            periods.c.plan_key,
            func.count().label("periods"),
            func.sum(periods.c.recurring_amount).label("recurring"),
            func.sum(periods.c.floor_billed).label("floor_billed"),
        ).group_by(periods.c.month, periods.c.plan_key)
    ).all()
    # Costs add up across a month's periods as they do within one: summed straight from
    # usage_costs, never per period first.
    costed = (
        select(
            month.label("month"),
            BillingPeriod.plan_key,
            UsageCost.nanos,
            UsageCost.events,
            UsageCost.unpriced,
        )
        .join(BillingPeriod, BillingPeriod.period_key == UsageCost.period_key)
        .where(*which)
        .subquery()
    )
    costs = {
        (int(row.month), row.plan_key): row
        for row in db.session.execute(
            select(
                costed.c.month,
                costed.c.plan_key,
                func.sum(costed.c.nanos).label("nanos"),
                func.sum(costed.c.events).label("events"),
                func.sum(costed.c.unpriced).label("unpriced"),
            ).group_by(costed.c.month, costed.c.plan_key)
        )
    }
    outbox = (
        select(
            month.label("month"),
            BillingPeriod.plan_key,
            OverageOutbox.event_name,
            OverageOutbox.units,
        )
        .join(BillingPeriod, BillingPeriod.period_key == OverageOutbox.period_key)
        .where(*which)
        .subquery()
    )
    units: dict[tuple[int, str], dict[str, int]] = defaultdict(dict)
    for index, plan_key, event_name, summed in db.session.execute(
        select(
            outbox.c.month, outbox.c.plan_key, outbox.c.event_name, func.sum(outbox.c.units)
        ).group_by(outbox.c.month, outbox.c.plan_key, outbox.c.event_name)
    ):
        units[(int(index), plan_key)][event_name] = int(summed)
    catalog = current_catalog()
    return [
        MarginSum(
            month=int(row.month),
            plan_key=row.plan_key,
            periods=int(row.periods),
            recurring=int(row.recurring or 0),
            overage=overage_amount(catalog.plan(row.plan_key), units[key]),
            floor_billed=int(row.floor_billed or 0),
            cost_nanos=int(cost.nanos) if (cost := costs.get(key)) else 0,
            events=int(cost.events) if cost else 0,
            unpriced=int(cost.unpriced) if cost else 0,
        )
        for row in totals
        for key in [(int(row.month), row.plan_key)]
    ]


def _month_index(starts: Sequence[datetime], low: int, high: int) -> ColumnElement[int]:
    """Which of ``starts[low:high + 1]`` a period started in (the last that starts at or
    before it), by halves: a few comparisons a period rather than one a month."""
    if low == high:
        return literal(low)
    middle = (low + high + 1) // 2
    return case(
        (BillingPeriod.starts_at < starts[middle], _month_index(starts, low, middle - 1)),
        else_=_month_index(starts, middle, high),
    )


def below_floor_candidates(
    plan_floors: Mapping[str, Decimal], since: datetime, moment: datetime
) -> list[str]:
    """Keys of the periods that may put their customer below its plan's floor as
    margin.floor_breach judges the periods started in [``since``, ``moment``]: of each
    customer's latest running and latest ended period (the earliest made among those that
    started together), those costlier than the floor allows of their recurring charge and floor
    billing (a superset: overage is revenue too). One query."""
    if not plan_floors:
        return []
    started = (BillingPeriod.starts_at >= since, BillingPeriod.starts_at <= moment)
    later = aliased(BillingPeriod)
    return list(
        db.session.scalars(
            select(BillingPeriod.period_key).where(
                BillingPeriod.id.in_(costly_periods(plan_floors, *started)),
                ~exists().where(
                    later.customer_id == BillingPeriod.customer_id,
                    later.starts_at >= since,
                    later.starts_at <= moment,
                    running_at(later, moment) == running_at(BillingPeriod, moment),
                    or_(
                        later.starts_at > BillingPeriod.starts_at,
                        and_(
                            later.starts_at == BillingPeriod.starts_at,
                            later.id < BillingPeriod.id,
                        ),
                    ),
                ),
            )
        )
    )


def costly_periods(plan_floors: Mapping[str, Decimal], *where: ColumnElement[bool]) -> Select[int]:
    """Ids of the paid periods (of ``where``) on a plan with a floor whose cost exceeds what the
    floor allows of their recurring charge and floor billing: every period below its floor is
    one (overage only adds revenue)."""
    # cost / billed > 1 - floor, in whole numbers: floor = n / d gives cost * d > billed * (d - n).
    ratios = {key: floor.as_integer_ratio() for key, floor in plan_floors.items()}
    denominator = case({key: d for key, (_, d) in ratios.items()}, value=BillingPeriod.plan_key)
    allowed = case({key: d - n for key, (n, d) in ratios.items()}, value=BillingPeriod.plan_key)
    billed = BillingPeriod.recurring_amount + BillingPeriod.floor_billed
    return (
        select(BillingPeriod.id)
        .join(UsageCost, UsageCost.period_key == BillingPeriod.period_key)
        .where(*where, BillingPeriod.plan_key.in_(plan_floors), BillingPeriod.trialing.is_(False))
        .group_by(BillingPeriod.id, BillingPeriod.plan_key, billed)
        .having(func.sum(UsageCost.nanos) * denominator > cast(billed, Numeric) * allowed * NANOS)
    )


def running_at(period: type[BillingPeriod], moment: datetime) -> ColumnElement[int]:
    """1 for a period still running at ``moment``, 0 for one that has ended."""
    return case((or_(period.ends_at.is_(None), period.ends_at > moment), 1), else_=0)


def lowest_candidates(since: datetime, until: datetime, count: int) -> list[str]:
    """Keys of a few periods started in [``since``, ``until``) among which are the ``count``
    that margin.lowest_margins picks of them all: SQL orders the paid periods by their margin
    in floating point (revenue with its overage at the plan's prices), and keeps the first
    ``count`` without revenue (in customer order), those whose margin ratio is within SLACK of
    the ``count``-th lowest with a cost, and the first ``count`` with revenue and no cost (a
    ratio of exactly 1, in customer order). One query."""
    which = [*periods_where(None, since, until, None), BillingPeriod.trialing.is_(False)]
    costs = costs_by_period(which)
    overage = (
        select(
            OverageOutbox.period_key,
            func.sum(cast(OverageOutbox.units, Float) * _unit_price()).label("amount"),
        )
        .join(BillingPeriod, BillingPeriod.period_key == OverageOutbox.period_key)
        .where(*which)
        .group_by(OverageOutbox.period_key)
        .subquery()
    )
    revenue = cast(BillingPeriod.recurring_amount + BillingPeriod.floor_billed, Float) + (
        func.coalesce(overage.c.amount, 0.0)
    )
    keyed = (
        select(
            BillingPeriod.period_key,
            BillingPeriod.customer_id,
            revenue.label("revenue"),
            func.coalesce(costs.c.nanos, 0).label("cost"),
        )
        .outerjoin(costs, costs.c.period_key == BillingPeriod.period_key)
        .outerjoin(overage, overage.c.period_key == BillingPeriod.period_key)
        .where(*which)
        .cte("keyed")
    )
    # What share of its revenue a period's cost is: 1 - its margin ratio.
    burn = cast(keyed.c.cost, Float) / (keyed.c.revenue * NANOS)
    costly = and_(keyed.c.revenue > 0, keyed.c.cost > 0)
    threshold = (
        select(burn).where(costly).order_by(burn.desc()).limit(1).offset(count - 1)
    ).scalar_subquery()
    in_order = (keyed.c.customer_id, keyed.c.period_key)
    parts = [
        select(keyed.c.period_key)
        .where(keyed.c.revenue == 0, keyed.c.cost > 0)
        .order_by(*in_order)
        .limit(count)
        .subquery(),
        select(keyed.c.period_key)
        .where(costly, burn >= func.coalesce(threshold, 0.0) * (1 - SLACK))
        .subquery(),
        select(keyed.c.period_key)
        .where(keyed.c.revenue > 0, keyed.c.cost == 0)
        .order_by(*in_order)
        .limit(count)
        .subquery(),
    ]
    return list(db.session.scalars(union_all(*(select(part.c.period_key) for part in parts))).all())


def _unit_price() -> ColumnElement[float]:
    """An outbox row's price per unit, by its period's plan and its meter (0 when the plan does
    not price the meter's overage, as margin.overage_amount)."""
    prices = [
        (
            and_(
                BillingPeriod.plan_key == plan_key,
                OverageOutbox.event_name == meter_event_name(feature_key),
            ),
            float(grant.overage_price / grant.overage_per),
        )
        for plan_key, plan in current_catalog().plans.items()
        for feature_key, grant in plan.features.items()
        if isinstance(grant, MeteredAllowance) and grant.overage_price is not None
    ]
    if not prices:
        return literal(0.0, Float)
    return case(*prices, else_=0.0)
