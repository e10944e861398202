"""The queries behind the margin figures, shared by the margin page, `flask costs report`, a
customer's page and the accounts at risk: a fixed number of them whatever the data.

The back office reads many customers' periods at once: by a window of time, which
app/billing/margin.py joins on the periods, never by listing their keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, select

from app.accounts.models import Customer
from app.backoffice.margin import (
    FloorBreach,
    MarginMonth,
    floor_breaches,
    lowest_margins,
    monthly_sums,
)
from app.backoffice.revenue import month_starts
from app.billing.margin import CostLine, PeriodMargin, cost_lines, period_margins
from app.billing.margin_sums import below_floor_candidates, lowest_candidates, margin_sums
from app.billing.models import BillingPeriod
from app.catalog import current_catalog
from app.clock import now
from app.extensions import db
from app.money import format_percent

MONTHS = 12
LOWEST_SHOWN = 10


@dataclass(frozen=True)
class CustomerRef:
    """How the back office names and links a customer."""

    reference_id: str
    email: str | None


@dataclass(frozen=True)
class MarginFigures:
    """Everything the margin page shows: the last twelve months, the one chosen, its most
    expensive features and models, and the customers to look at."""

    currency: str
    months: list[MarginMonth]
    selected: MarginMonth
    lines: list[CostLine]
    below_floor: list[FloorBreach]
    lowest: list[PeriodMargin]
    customers: dict[int, CustomerRef]

    @property
    def current(self) -> MarginMonth:
        return self.months[-1]

    @property
    def unpriced_models(self) -> list[str]:
        """The models of the chosen month's events that no one could price."""
        return sorted({line.model or "(none)" for line in self.lines if line.unpriced})


def twelve_months() -> list[datetime]:
    """The first instants of the months the margin page covers, this one last."""
    return month_starts(now(), MONTHS)


def margin_figures(month: datetime | None = None) -> MarginFigures:
    """The page's figures; ``month`` (one of twelve_months()) picks the month detailed, this
    one by default. The months are added up in SQL; only the periods the page lists (below
    their floor, the lowest margins) and a few more that SQL cannot tell from them are read
    one by one, and margin.py decides which to show."""
    starts = twelve_months()
    catalog = current_catalog()
    tier_of = {key: plan.tier for key, plan in catalog.plans.items()}
    months = monthly_sums(starts, margin_sums(starts), tier_of, list(catalog.tiers))
    selected = months[starts.index(month)] if month in starts else months[-1]
    until = _month_after(selected.start)
    moment = now()
    plan_floors = floors()
    below_keys = below_floor_candidates(plan_floors, starts[0], moment)
    lowest_keys = lowest_candidates(selected.start, until, LOWEST_SHOWN)
    margins = {
        margin.period_key: margin
        for margin in period_margins(period_keys=set(below_keys) | set(lowest_keys))
    }
    breaches = floor_breaches((margins[key] for key in below_keys), plan_floors, moment)
    lowest = lowest_margins((margins[key] for key in lowest_keys), LOWEST_SHOWN)
    return MarginFigures(
        currency=catalog.currency,
        months=months,
        selected=selected,
        lines=cost_lines(since=selected.start, until=until),
        below_floor=breaches,
        lowest=lowest,
        customers=_customers(
            Customer.id.in_(
                {period.customer_id for period in lowest}
                | {breach.period.customer_id for breach in breaches}
            )
        ),
    )


def floors() -> dict[str, Decimal]:
    """Each plan's margin floor, for the plans that have one."""
    return {
        key: plan.margin_floor
        for key, plan in current_catalog().plans.items()
        if plan.margin_floor is not None
    }


def customer_margins(customer_id: int) -> list[PeriodMargin]:
    """The customer's last twelve periods, newest first."""
    return period_margins(customer_ids=[customer_id])[-MONTHS:][::-1]


def _month_after(start: datetime) -> datetime:
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)


def _window(since: datetime, until: datetime | None) -> ColumnElement[bool]:
    if until is None:
        return BillingPeriod.starts_at >= since
    return and_(BillingPeriod.starts_at >= since, BillingPeriod.starts_at < until)


def _customers(which: ColumnElement[bool]) -> dict[int, CustomerRef]:
    rows = db.session.execute(
        select(Customer.id, Customer.reference_id, Customer.email).where(which)
    )
    return {row.id: CustomerRef(row.reference_id, row.email) for row in rows}


CSV_HEADER = [
    "reference_id",
    "email",
    "plan",
    "period_start",
    "period_end",
    "trialing",
    "currency",
    "revenue",
    "cost",
    "margin",
    "margin_percent",
    "events",
    "unpriced",
    "floor_billed",
]


def csv_rows(month: datetime | None) -> Iterator[list[Any]]:
    """One row per customer per period: the periods that started in ``month``, or in the last
    twelve months without one. Amounts in minor units of the currency, exactly."""
    since = month or twelve_months()[0]
    until = _month_after(month) if month else None
    margins = period_margins(since=since, until=until)
    names = _customers(
        Customer.id.in_(select(BillingPeriod.customer_id).where(_window(since, until)))
    )
    for margin in margins:
        customer = names[margin.customer_id]
        yield [
            customer.reference_id,
            customer.email,
            margin.plan_key,
            margin.starts_at.isoformat(),
            margin.ends_at.isoformat() if margin.ends_at else None,
            "yes" if margin.trialing else "no",
            margin.currency,
            plain(margin.revenue),
            plain(margin.cost),
            plain(margin.margin),
            format_percent(margin.margin_ratio),
            margin.events,
            margin.unpriced,
            margin.floor_billed,
        ]


def plain(amount: Decimal) -> str:
    """An exact amount without exponent or trailing zeros: ``Decimal("4900.500")`` is 4900.5."""
    return format(amount.normalize(), "f") if amount else "0"
