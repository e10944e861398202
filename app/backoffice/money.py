"""The money pages' figures (disputes and refunds, geography, top customers): small pure
functions over plain rows, each checked against hand-worked examples; the routes query and
render."""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from app.accounts.mirror import ENDED_STATUSES, SubscriptionStatus

# Refunds that gave money back, or are giving it: a failed or cancelled refund gave nothing.
REFUNDS_NOT_COUNTED = ("failed", "canceled")
# Stripe's inquiries (statuses warning_needs_response, warning_under_review, warning_closed) are
# questions from the bank before any chargeback: listed, but not disputes the networks count.
INQUIRY_PREFIX = "warning_"

# (year, month, currency, count, amount): a month's disputes or refunds in one currency.
MonthlyAmounts = tuple[int, int, str, int, int]


def month_start(at: date) -> date:
    """The first day of ``at``'s month."""
    return date(at.year, at.month, 1)


def months_ago(at: datetime, months: int) -> datetime:
    """The same moment ``months`` calendar months earlier (the 31st becomes the month's last)."""
    month_index = at.year * 12 + at.month - 1 - months
    year, month = divmod(month_index, 12)
    day = min(at.day, calendar.monthrange(year, month + 1)[1])
    return at.replace(year=year, month=month + 1, day=day)


def last_months(today: date, count: int = 12) -> list[date]:
    """The first days of the ``count`` months up to and including ``today``'s, oldest first."""
    index = today.year * 12 + today.month - 1
    return [date(i // 12, i % 12 + 1, 1) for i in range(index - count + 1, index + 1)]


def dispute_rate(disputes: int, successful_charges: int) -> float | None:
    """Disputes opened in a month over the charges that succeeded in that month, the way Stripe
    and the card networks measure dispute activity; None for a month without a charge."""
    if successful_charges == 0:
        return None
    return disputes / successful_charges


@dataclass(frozen=True)
class MonthFigures:
    """One month of disputes and refunds, amounts by currency."""

    month: date
    disputes: int = 0
    disputed: dict[str, int] = field(default_factory=dict)
    refunds: int = 0
    refunded: dict[str, int] = field(default_factory=dict)
    successful_charges: int = 0

    @property
    def dispute_rate(self) -> float | None:
        """As ``dispute_rate`` of this month's counts."""
        return dispute_rate(self.disputes, self.successful_charges)


def monthly_figures(
    months: Sequence[date],
    disputes: Iterable[MonthlyAmounts],
    refunds: Iterable[MonthlyAmounts],
    successful_charges: Iterable[tuple[int, int, int]],
) -> list[MonthFigures]:
    """Each of ``months`` (first days) with its disputes opened, refunds made and successful
    charges (year, month, count); rows of other months are left out."""
    dispute_totals = _by_month(disputes)
    refund_totals = _by_month(refunds)
    charges = {date(year, month, 1): count for year, month, count in successful_charges}
    figures = []
    for month in months:
        dispute_count, disputed = dispute_totals.get(month, (0, {}))
        refund_count, refunded = refund_totals.get(month, (0, {}))
        figures.append(
            MonthFigures(
                month, dispute_count, disputed, refund_count, refunded, charges.get(month, 0)
            )
        )
    return figures


def _by_month(rows: Iterable[MonthlyAmounts]) -> dict[date, tuple[int, dict[str, int]]]:
    counts: dict[date, int] = defaultdict(int)
    amounts: dict[date, dict[str, int]] = defaultdict(dict)
    for year, month, currency, count, amount in rows:
        first = date(year, month, 1)
        counts[first] += count
        amounts[first][currency] = amounts[first].get(currency, 0) + amount
    return {month: (counts[month], amounts[month]) for month in counts}


def country_of(
    customer_country: str | None, billing_country: str | None, card_country: str | None
) -> str | None:
    """Where a customer is: its address in Stripe, else the billing address of its latest charge
    that has one, else the country of the card that paid it; None when none is known."""
    for country in (customer_country, billing_country, card_country):
        if country:
            return country.upper()
    return None


@dataclass
class CountryFigures:
    """One country's revenue (by currency, in minor units) and customers."""

    country: str | None
    revenue: dict[str, int] = field(default_factory=dict)
    customers: int = 0


# (customer's country, latest billing country, latest card country, currency, net revenue)
CountryRevenue = tuple[str | None, str | None, str | None, str, int]
# (customer's country, latest billing country, latest card country, customers)
CountryCustomers = tuple[str | None, str | None, str | None, int]


def by_country(
    revenue: Iterable[CountryRevenue], customers: Iterable[CountryCustomers], currency: str
) -> list[CountryFigures]:
    """Revenue and customers per country, ``country_of`` each row; the most revenue in
    ``currency`` first, then the most customers, the unknown country last."""
    countries: dict[str | None, CountryFigures] = {}
    for customer_country, billing, card, row_currency, amount in revenue:
        found = countries.setdefault(
            key := country_of(customer_country, billing, card), CountryFigures(key)
        )
        found.revenue[row_currency] = found.revenue.get(row_currency, 0) + amount
    for customer_country, billing, card, count in customers:
        found = countries.setdefault(
            key := country_of(customer_country, billing, card), CountryFigures(key)
        )
        found.customers += count
    return sorted(
        countries.values(),
        key=lambda c: (c.country is None, -c.revenue.get(currency, 0), -c.customers, c.country),
    )


@dataclass(frozen=True)
class PlanSpan:
    """One subscription of a customer: its plan, from when to when, and how it stands."""

    plan_key: str
    start: datetime
    end: datetime | None
    status: SubscriptionStatus

    def __str__(self) -> str:
        end = f"{self.end:%Y-%m-%d}" if self.end else "now"
        return f"{self.plan_key} {self.start:%Y-%m-%d} to {end} ({self.status.value})"


# (customer id, plan key, created in Stripe, ended at, canceled at, status)
SubscriptionSpan = tuple[int, str, datetime, datetime | None, datetime | None, SubscriptionStatus]


def plan_histories(rows: Iterable[SubscriptionSpan]) -> dict[int, list[PlanSpan]]:
    """Each customer's subscriptions in the order Stripe created them. One that has ended ends
    when Stripe ended it (or, without that, cancelled it); a live one runs until now, even when
    it is set to cancel (Stripe's canceled_at then says when that was asked)."""
    histories: dict[int, list[PlanSpan]] = defaultdict(list)
    for customer_id, plan_key, created, ended_at, canceled_at, status in rows:
        end = (ended_at or canceled_at) if status in ENDED_STATUSES else ended_at
        histories[customer_id].append(PlanSpan(plan_key, created, end, status))
    for spans in histories.values():
        spans.sort(key=lambda span: span.start)
    return dict(histories)
