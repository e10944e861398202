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
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from fractions import Fraction

from sqlalchemy import ColumnElement, func, select

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
    period_keys: Collection[str] | None = None,
) -> list[PeriodMargin]:
    """The margins of the billing periods that match, oldest first: those of ``customer_ids``,
    started at or after ``since``, named in ``period_keys`` (each filter optional)."""
    conditions: list[ColumnElement[bool]] = []
    if customer_ids is not None:
        conditions.append(BillingPeriod.customer_id.in_(customer_ids))
    if since is not None:
        conditions.append(BillingPeriod.starts_at >= since)
    if period_keys is not None:
        conditions.append(BillingPeriod.period_key.in_(period_keys))
    periods = db.session.scalars(
        select(BillingPeriod).where(*conditions).order_by(BillingPeriod.starts_at, BillingPeriod.id)
    ).all()
    keys = [period.period_key for period in periods]
    costs = _costs_by_period(keys)
    overage = _overage_by_period(keys)
    catalog = current_catalog()
    return [
        PeriodMargin(
            customer_id=period.customer_id,
            period_key=period.period_key,
            plan_key=period.plan_key,
            starts_at=period.starts_at,
            ends_at=period.ends_at,
            trialing=period.trialing,
            currency=period.currency,
            recurring=period.recurring_amount,
            overage=_overage_amount(catalog.plan(period.plan_key), overage[period.period_key]),
            floor_billed=period.floor_billed,
            cost_nanos=costs[period.period_key][0],
            events=costs[period.period_key][1],
            unpriced=costs[period.period_key][2],
        )
        for period in periods
    ]


def current_margin(subscription: Subscription) -> PeriodMargin | None:
    """The margin of the subscription's running period so far (as its record stands, or as the
    subscription is when the sync has not recorded the period yet)."""
    key = current_period_key(subscription)
    found = period_margins(period_keys=[key])
    if found:
        return found[0]
    terms = current_period_terms(subscription)
    if terms is None:
        return None
    costs = _costs_by_period([key])[key]
    return PeriodMargin(
        customer_id=subscription.customer_id,
        period_key=key,
        plan_key=terms.plan_key,
        starts_at=terms.starts_at,
        ends_at=terms.ends_at,
        trialing=terms.trialing,
        currency=terms.currency,
        recurring=terms.recurring_amount,
        overage=_overage_amount(
            current_catalog().plan(terms.plan_key), _overage_by_period([key])[key]
        ),
        floor_billed=0,
        cost_nanos=costs[0],
        events=costs[1],
        unpriced=costs[2],
    )


def cost_lines(period_keys: Collection[str]) -> list[CostLine]:
    """What the periods' events cost by feature and model, the most expensive first."""
    if not period_keys:
        return []
    rows = db.session.execute(
        select(
            UsageCost.feature_key,
            UsageCost.model,
            func.sum(UsageCost.nanos),
            func.sum(UsageCost.events),
            func.sum(UsageCost.unpriced),
        )
        .where(UsageCost.period_key.in_(period_keys))
        .group_by(UsageCost.feature_key, UsageCost.model)
    ).all()
    lines = [
        CostLine(feature, model, int(nanos), int(events), int(unpriced))
        for feature, model, nanos, events, unpriced in rows
    ]
    return sorted(lines, key=lambda line: (-line.cost_nanos, line.feature_key, line.model))


def floor_of(catalog: Catalog, plan_key: str) -> Plan | None:
    """The plan, when it declares a margin floor."""
    plan = catalog.plan(plan_key)
    return plan if plan is not None and plan.margin_floor is not None else None


def _costs_by_period(keys: list[str]) -> dict[str, tuple[int, int, int]]:
    totals: dict[str, tuple[int, int, int]] = defaultdict(lambda: (0, 0, 0))
    if not keys:
        return totals
    rows = db.session.execute(
        select(
            UsageCost.period_key,
            func.sum(UsageCost.nanos),
            func.sum(UsageCost.events),
            func.sum(UsageCost.unpriced),
        )
        .where(UsageCost.period_key.in_(keys))
        .group_by(UsageCost.period_key)
    ).all()
    for key, nanos, events, unpriced in rows:
        totals[key] = (int(nanos), int(events), int(unpriced))
    return totals


def _overage_by_period(keys: list[str]) -> dict[str, dict[str, int]]:
    units: dict[str, dict[str, int]] = defaultdict(dict)
    if not keys:
        return units
    rows = db.session.execute(
        select(OverageOutbox.period_key, OverageOutbox.event_name, func.sum(OverageOutbox.units))
        .where(OverageOutbox.period_key.in_(keys))
        .group_by(OverageOutbox.period_key, OverageOutbox.event_name)
    ).all()
    for key, event_name, total in rows:
        units[key][event_name] = int(total)
    return units


def _overage_amount(plan: Plan | None, units_by_meter: dict[str, int]) -> Decimal:
    """Overage units at the plan's prices, as Stripe bills them (unit price = price ÷ per)."""
    if plan is None or not units_by_meter:
        return Decimal(0)
    amount = Decimal(0)
    for feature_key, grant in plan.features.items():
        if isinstance(grant, MeteredAllowance) and grant.overage_price is not None:
            units = units_by_meter.get(meter_event_name(feature_key), 0)
            amount += Decimal(units) * grant.overage_price / grant.overage_per
    return amount


def by_plan(margins: Iterable[PeriodMargin]) -> dict[str, list[PeriodMargin]]:
    """The margins grouped by plan key."""
    grouped: dict[str, list[PeriodMargin]] = defaultdict(list)
    for margin in margins:
        grouped[margin.plan_key].append(margin)
    return grouped
