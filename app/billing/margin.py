"""Margin per customer and billing period: what the period was billed, against what serving its
usage cost (docs/costs.md).

A period's revenue is what Stripe invoices for it, net of discounts: the subscription's
recurring charge for the period (as the sync path last saw it while the period ran; nothing
during a trial), plus its billable overage (the units forwarded to its meters, at the plan's
overage price), plus what the margin floor billed for it. Its cost is the sum of its usage
events' costs. Everything is read from the local records, never from Stripe.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from fractions import Fraction

from sqlalchemy import ColumnElement, Subquery, func, select

from app.accounts.mirror import Subscription
from app.billing.models import BillingPeriod
from app.billing.periods import current_period_terms
from app.catalog import Catalog, MeteredAllowance, Plan, current_catalog
from app.catalog.stripe_names import meter_event_name
from app.entitlements.access import period_key as current_period_key
from app.entitlements.costs import NANOS
from app.entitlements.models import OverageOutbox, UsageCost
from app.extensions import db


@dataclass(frozen=True)
class PeriodMargin:
    """One billing period of one customer: revenue, cost and margin, in minor units."""

    customer_id: int
    period_key: str
    plan_key: str
    starts_at: datetime
    ends_at: datetime | None
    trialing: bool
    currency: str
    recurring: int  # the subscription's charge for the period, net of discounts
    overage: Decimal  # billable overage forwarded for the period, at the plan's prices
    floor_billed: int  # what the margin floor billed for the period
    cost_nanos: int  # billionths of a minor unit
    events: int  # events with a cost
    unpriced: int  # of which no one could price

    @property
    def cost(self) -> Decimal:
        return Decimal(self.cost_nanos) / NANOS

    @property
    def revenue_before_floor(self) -> Decimal:
        return self.recurring + self.overage

    @property
    def revenue(self) -> Decimal:
        return self.revenue_before_floor + self.floor_billed

    @property
    def margin(self) -> Decimal:
        return self.revenue - self.cost

    @property
    def margin_ratio(self) -> Fraction | None:
        """Margin over revenue (0.8 is 80%); None without revenue."""
        revenue = self.revenue
        return Fraction(self.margin) / Fraction(revenue) if revenue else None

    def restoring_amount(self, floor: Decimal) -> int:
        """What the period must be billed, in whole minor units rounded up, for its margin to
        reach ``floor``: cost / (1 - floor) - revenue before the floor; 0 when it already does."""
        needed = self.cost / (1 - floor) - self.revenue_before_floor
        return max(int(needed.to_integral_value(rounding=ROUND_CEILING)), 0)

    def floor_due(self, floor: Decimal) -> int:
        """What the margin floor bills the period in all so far, in minor units: the restoring
        amount, or what it billed already when that was more (what was billed stays billed);
        nothing more during a trial: the floor bills paid periods only."""
        if self.trialing:
            return self.floor_billed
        return max(self.restoring_amount(floor), self.floor_billed)

    def below(self, floor: Decimal) -> bool:
        """Whether its margin, what the floor billed included, is under ``floor``."""
        if not self.cost_nanos:
            return False
        ratio = self.margin_ratio
        return ratio is None or ratio < Fraction(floor)


@dataclass(frozen=True)
class CostLine:
    """Cost of a feature's events with one model (model "" for none) over some periods."""

    feature_key: str
    model: str
    cost_nanos: int
    events: int
    unpriced: int

    @property
    def cost(self) -> Decimal:
        return Decimal(self.cost_nanos) / NANOS


def period_margins(
    *,
    customer_ids: Collection[int] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    period_key: str | None = None,
    period_keys: Collection[str] | None = None,
) -> list[PeriodMargin]:
    """The margins of the billing periods that match, oldest first: those of ``customer_ids``
    (a few), started in [``since``, ``until``), the one named ``period_key``, or those named in
    ``period_keys`` (at most a thousand at a time: one parameter each). Each filter is
    optional. Three queries, each joined on the periods, whatever their number."""
    which = periods_where(customer_ids, since, until, period_key, period_keys)
    costs = costs_by_period(which)
    overage: dict[str, dict[str, int]] = defaultdict(dict)
    for key, event_name, units in db.session.execute(
        select(OverageOutbox.period_key, OverageOutbox.event_name, func.sum(OverageOutbox.units))
        .join(BillingPeriod, BillingPeriod.period_key == OverageOutbox.period_key)
        .where(*which)
        .group_by(OverageOutbox.period_key, OverageOutbox.event_name)
    ):
        overage[key][event_name] = int(units)
    catalog = current_catalog()
    # Plain rows, not ORM objects: the periods are only read.
    rows = db.session.execute(
        select(
            BillingPeriod.customer_id,
            BillingPeriod.period_key,
            BillingPeriod.plan_key,
            BillingPeriod.starts_at,
            BillingPeriod.ends_at,
            BillingPeriod.trialing,
            BillingPeriod.currency,
            BillingPeriod.recurring_amount,
            BillingPeriod.floor_billed,
            costs.c.nanos,
            costs.c.events,
            costs.c.unpriced,
        )
        .outerjoin(costs, costs.c.period_key == BillingPeriod.period_key)
        .where(*which)
        .order_by(BillingPeriod.starts_at, BillingPeriod.id)
    )
    return [
        PeriodMargin(
            customer_id=row.customer_id,
            period_key=row.period_key,
            plan_key=row.plan_key,
            starts_at=row.starts_at,
            ends_at=row.ends_at,
            trialing=row.trialing,
            currency=row.currency,
            recurring=row.recurring_amount,
            overage=overage_amount(catalog.plan(row.plan_key), overage[row.period_key]),
            floor_billed=row.floor_billed,
            cost_nanos=int(row.nanos or 0),
            events=int(row.events or 0),
            unpriced=int(row.unpriced or 0),
        )
        for row in rows
    ]


def current_margin(subscription: Subscription) -> PeriodMargin | None:
    """The margin of the subscription's running period so far (as its record stands, or as the
    subscription is when the sync has not recorded the period yet)."""
    key = current_period_key(subscription)
    found = period_margins(period_key=key)
    if found:
        return found[0]
    terms = current_period_terms(subscription)
    if terms is None:
        return None
    (line,) = cost_lines(period_key=key, by_model=False)
    return PeriodMargin(
        customer_id=subscription.customer_id,
        period_key=key,
        plan_key=terms.plan_key,
        starts_at=terms.starts_at,
        ends_at=terms.ends_at,
        trialing=terms.trialing,
        currency=terms.currency,
        recurring=terms.recurring_amount,
        # Overage is only forwarded for a period the sync has seen: none yet.
        overage=Decimal(0),
        floor_billed=0,
        cost_nanos=line.cost_nanos,
        events=line.events,
        unpriced=line.unpriced,
    )


def cost_lines(
    *,
    customer_ids: Collection[int] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    period_key: str | None = None,
    period_keys: Collection[str] | None = None,
    by_model: bool = True,
) -> list[CostLine]:
    """What the events of the matching periods (as period_margins picks them) cost by feature
    and model, the most expensive first; ``by_model`` False: one line for all."""
    groups = (UsageCost.feature_key, UsageCost.model) if by_model else ()
    statement = select(
        *groups,
        func.coalesce(func.sum(UsageCost.nanos), 0),
        func.coalesce(func.sum(UsageCost.events), 0),
        func.coalesce(func.sum(UsageCost.unpriced), 0),
    )
    alone = customer_ids is None and since is None and until is None and period_keys is None
    if period_key is not None and alone:
        # A period the sync may not have recorded yet: its costs alone.
        statement = statement.where(UsageCost.period_key == period_key)
    else:
        statement = statement.join(
            BillingPeriod, BillingPeriod.period_key == UsageCost.period_key
        ).where(*periods_where(customer_ids, since, until, period_key, period_keys))
    rows = db.session.execute(statement.group_by(*groups)).all()
    lines = [
        CostLine(
            feature_key=row[0] if by_model else "",
            model=row[1] if by_model else "",
            cost_nanos=int(row[-3]),
            events=int(row[-2]),
            unpriced=int(row[-1]),
        )
        for row in rows
    ]
    return sorted(lines, key=lambda line: (-line.cost_nanos, line.feature_key, line.model))


def periods_where(
    customer_ids: Collection[int] | None,
    since: datetime | None,
    until: datetime | None,
    period_key: str | None,
    period_keys: Collection[str] | None = None,
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if customer_ids is not None:
        conditions.append(BillingPeriod.customer_id.in_(customer_ids))
    if since is not None:
        conditions.append(BillingPeriod.starts_at >= since)
    if until is not None:
        conditions.append(BillingPeriod.starts_at < until)
    if period_key is not None:
        conditions.append(BillingPeriod.period_key == period_key)
    if period_keys is not None:
        conditions.append(BillingPeriod.period_key.in_(period_keys))
    return conditions


def costs_by_period(which: Sequence[ColumnElement[bool]]) -> Subquery:
    """The matching periods' costs (nanos, events, unpriced), one row per period that has any."""
    return (
        select(
            UsageCost.period_key,
            func.sum(UsageCost.nanos).label("nanos"),
            func.sum(UsageCost.events).label("events"),
            func.sum(UsageCost.unpriced).label("unpriced"),
        )
        .join(BillingPeriod, BillingPeriod.period_key == UsageCost.period_key)
        .where(*which)
        .group_by(UsageCost.period_key)
        .subquery()
    )


def floor_of(catalog: Catalog, plan_key: str) -> Plan | None:
    """The plan, when it declares a margin floor."""
    plan = catalog.plan(plan_key)
    return plan if plan is not None and plan.margin_floor is not None else None


def overage_amount(plan: Plan | None, units_by_meter: dict[str, int]) -> Decimal:
    """Overage units at the plan's prices, as Stripe bills them (unit price = price ÷ per)."""
    if plan is None or not units_by_meter:
        return Decimal(0)
    amount = Decimal(0)
    for feature_key, grant in plan.features.items():
        if isinstance(grant, MeteredAllowance) and grant.overage_price is not None:
            units = units_by_meter.get(meter_event_name(feature_key), 0)
            amount += Decimal(units) * grant.overage_price / grant.overage_per
    return amount
