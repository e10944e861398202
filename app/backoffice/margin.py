"""Margin figures: pure functions over billing periods' margins (app/billing/margin.py's
PeriodMargin), each tested against hand-worked examples; margin_data.py queries them.

A period belongs to the calendar month (UTC) it starts in, as the revenue page counts months: a
yearly period's revenue and everything its usage costs fall in the month it began. A month's,
plan's or tier's margin is its periods' revenue less their cost, over their revenue.

A customer is below its plan's floor when its running period is (margin under the floor, with
what the floor billed counted as revenue), or else when its latest ended period was. Trials are
not judged: they bill nothing by design, so any cost would put them under any floor.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from fractions import Fraction

from app.billing.margin import PeriodMargin
from app.billing.margin_sums import MarginSum
from app.entitlements.costs import NANOS
from app.money import format_percent

OTHER_TIER = "other"  # a plan the catalog no longer has


@dataclass
class MarginLine:
    """Billing periods added up (a month's, a plan's, a tier's): revenue and cost in minor units
    of the catalog's currency."""

    name: str
    revenue: Decimal = Decimal(0)
    cost_nanos: int = 0
    floor_billed: int = 0
    periods: int = 0
    events: int = 0
    unpriced: int = 0

    def add(self, summed: MarginSum) -> None:
        self.revenue += summed.revenue
        self.cost_nanos += summed.cost_nanos
        self.floor_billed += summed.floor_billed
        self.periods += summed.periods
        self.events += summed.events
        self.unpriced += summed.unpriced

    @property
    def cost(self) -> Decimal:
        return Decimal(self.cost_nanos) / NANOS

    @property
    def margin(self) -> Decimal:
        return self.revenue - self.cost

    @property
    def margin_ratio(self) -> Fraction | None:
        """Margin over revenue (0.8 is 80%); None without revenue."""
        return Fraction(self.margin) / Fraction(self.revenue) if self.revenue else None


@dataclass(frozen=True)
class MarginMonth:
    """The periods that started in one month, added up in all, by tier and by plan (and the
    periods themselves when it was added up from them)."""

    start: datetime
    total: MarginLine
    by_tier: list[MarginLine]
    by_plan: list[MarginLine]
    periods: list[PeriodMargin] = field(default_factory=list, repr=False)


def roll_up(
    start: datetime,
    periods: Sequence[PeriodMargin],
    tier_of: Mapping[str, str],
    tier_order: Sequence[str],
) -> MarginMonth:
    """One month's periods added up: in all, by tier (in the catalog's order, then any other)
    and by plan (the highest revenue first)."""
    month = roll_up_sums(start, [MarginSum.of(period) for period in periods], tier_of, tier_order)
    return replace(month, periods=list(periods))


def roll_up_sums(
    start: datetime,
    sums: Iterable[MarginSum],
    tier_of: Mapping[str, str],
    tier_order: Sequence[str],
) -> MarginMonth:
    """One month's periods, already added up by plan (or one by one), added up as roll_up
    does."""
    total = MarginLine("Total")
    tiers: dict[str, MarginLine] = {}
    plans: dict[str, MarginLine] = {}
    for summed in sums:
        tier = tier_of.get(summed.plan_key, OTHER_TIER)
        for line in (
            total,
            tiers.setdefault(tier, MarginLine(tier)),
            plans.setdefault(summed.plan_key, MarginLine(summed.plan_key)),
        ):
            line.add(summed)
    rank = {tier: index for index, tier in enumerate(tier_order)}
    return MarginMonth(
        start=start,
        total=total,
        by_tier=sorted(
            tiers.values(), key=lambda line: (rank.get(line.name, len(rank)), line.name)
        ),
        by_plan=sorted(plans.values(), key=lambda line: (-line.revenue, line.name)),
    )


def monthly_margins(
    starts: Sequence[datetime],
    margins: Iterable[PeriodMargin],
    tier_of: Mapping[str, str],
    tier_order: Sequence[str],
) -> list[MarginMonth]:
    """Each month's roll-up, oldest first; ``starts`` are the months' first instants, and a
    period that started before the first month is left out."""
    by_month: dict[int, list[PeriodMargin]] = defaultdict(list)
    for margin in margins:
        index = bisect_right(starts, margin.starts_at) - 1
        if index >= 0:
            by_month[index].append(margin)
    return [
        roll_up(start, by_month[index], tier_of, tier_order) for index, start in enumerate(starts)
    ]


def monthly_sums(
    starts: Sequence[datetime],
    sums: Iterable[MarginSum],
    tier_of: Mapping[str, str],
    tier_order: Sequence[str],
) -> list[MarginMonth]:
    """Each month's roll-up, oldest first, from margin_sums.margin_sums(starts): the same as
    monthly_margins over the periods themselves."""
    by_month: dict[int, list[MarginSum]] = defaultdict(list)
    for summed in sums:
        by_month[summed.month].append(summed)
    return [
        roll_up_sums(start, by_month[index], tier_of, tier_order)
        for index, start in enumerate(starts)
    ]


@dataclass(frozen=True)
class FloorBreach:
    """A customer's period below its plan's margin floor; ``running`` when it is the current
    one, else it is the latest that ended."""

    period: PeriodMargin
    floor: Decimal
    running: bool

    @property
    def floor_text(self) -> str:
        return floor_percent(self.floor)


def floor_percent(floor: Decimal) -> str:
    """A margin floor as a percent: ``0.80`` gives 80%, ``0.825`` gives 82.5%."""
    return format_percent(Fraction(floor), digits=0 if (floor * 100) % 1 == 0 else 1)


def floor_breach(
    periods: Iterable[PeriodMargin], floors: Mapping[str, Decimal], now: datetime
) -> FloorBreach | None:
    """Of one customer's periods: the running one if it is below its plan's floor, else the
    latest ended one if it is; None when neither is (or its plan has no floor, or it is a
    trial)."""
    running: PeriodMargin | None = None
    ended: PeriodMargin | None = None
    for period in periods:
        if period.starts_at > now:
            continue
        if period.ends_at is None or period.ends_at > now:
            running = period if running is None or period.starts_at > running.starts_at else running
        elif ended is None or period.starts_at > ended.starts_at:
            ended = period
    for candidate, is_running in ((running, True), (ended, False)):
        if candidate is None or candidate.trialing:
            continue
        floor = floors.get(candidate.plan_key)
        if floor is not None and candidate.below(floor):
            return FloorBreach(candidate, floor, is_running)
    return None


def floor_breaches(
    margins: Iterable[PeriodMargin], floors: Mapping[str, Decimal], now: datetime
) -> list[FloorBreach]:
    """Every customer below its plan's floor (see floor_breach), the lowest margin first."""
    by_customer: dict[int, list[PeriodMargin]] = defaultdict(list)
    for margin in margins:
        by_customer[margin.customer_id].append(margin)
    found = [
        breach
        for periods in by_customer.values()
        if (breach := floor_breach(periods, floors, now)) is not None
    ]
    return sorted(found, key=lambda breach: _lowest_first(breach.period))


def lowest_margins(periods: Iterable[PeriodMargin], count: int) -> list[PeriodMargin]:
    """The ``count`` paid periods with the lowest margin (cost without revenue first); periods
    with neither revenue nor cost, and trials, are left out."""
    judged = [
        period
        for period in periods
        if not period.trialing and (period.revenue or period.cost_nanos)
    ]
    return sorted(judged, key=_lowest_first)[:count]


def _lowest_first(period: PeriodMargin) -> tuple[bool, Fraction, int, str]:
    ratio = period.margin_ratio
    return (ratio is not None, ratio or Fraction(0), period.customer_id, period.period_key)


def percent_of(ratio: Fraction | None) -> int | None:
    """A ratio as whole percent, for a chart's points (None stays None)."""
    return None if ratio is None else round(ratio * 100)
