"""Revenue figures: pure functions over plain rows, each tested against hand-worked examples.

Monthly recurring revenue (MRR) counts active and past-due subscriptions at what they are worth
a month (a yearly price over twelve months, quantity and discounts respected:
app/billing/revenue.py); ARR is twelve times MRR. Trials are pipeline, not revenue. The monthly
movements follow ChartMogul's definitions: new business, expansion, contraction, churn and
reactivation of a customer's MRR, recorded as the sync path saw them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction

from app.backoffice.money import last_months
from app.billing.models import RevenueMovement

GROWTH = (RevenueMovement.NEW, RevenueMovement.EXPANSION, RevenueMovement.REACTIVATION)


@dataclass(frozen=True)
class SubscriptionGroup:
    """Subscriptions of one plan in one status: how many and their monthly amounts summed."""

    tier: str
    plan_key: str
    status: str
    count: int
    monthly_amount: int


@dataclass
class RevenueLine:
    """MRR of a tier or a plan now."""

    name: str
    mrr: int = 0
    past_due_mrr: int = 0
    subscriptions: int = 0
    trialing: int = 0
    trial_pipeline: int = 0

    @property
    def arr(self) -> int:
        return self.mrr * 12


@dataclass
class RevenueNow:
    total: RevenueLine
    by_tier: list[RevenueLine]
    by_plan: list[RevenueLine]


def revenue_now(groups: list[SubscriptionGroup], tier_order: list[str]) -> RevenueNow:
    """MRR and ARR now, by tier (in the catalog's order) and by plan; past due counted and
    shown apart; trials as pipeline."""
    total = RevenueLine("Total")
    tiers: dict[str, RevenueLine] = {}
    plans: dict[str, RevenueLine] = {}
    for group in groups:
        for line in (
            total,
            tiers.setdefault(group.tier, RevenueLine(group.tier)),
            plans.setdefault(group.plan_key, RevenueLine(group.plan_key)),
        ):
            if group.status == "trialing":
                line.trialing += group.count
                line.trial_pipeline += group.monthly_amount
            else:
                line.subscriptions += group.count
                line.mrr += group.monthly_amount
                if group.status == "past_due":
                    line.past_due_mrr += group.monthly_amount
    rank = {tier: index for index, tier in enumerate(tier_order)}
    return RevenueNow(
        total=total,
        by_tier=sorted(tiers.values(), key=lambda line: rank.get(line.name, len(rank))),
        by_plan=sorted(plans.values(), key=lambda line: -line.mrr),
    )


@dataclass(frozen=True)
class MovementTotal:
    """The changes of one kind in one month: their MRR summed (after - before) and how many."""

    month: int  # index into the months asked for
    movement: RevenueMovement
    amount: int
    count: int


@dataclass
class Month:
    """One month's MRR movements, from its opening MRR to its closing MRR."""

    start: datetime
    opening_mrr: int
    opening_customers: int
    amounts: dict[RevenueMovement, int] = field(default_factory=dict)
    counts: dict[RevenueMovement, int] = field(default_factory=dict)

    def amount(self, movement: RevenueMovement) -> int:
        return self.amounts.get(movement, 0)

    def count(self, movement: RevenueMovement) -> int:
        return self.counts.get(movement, 0)

    @property
    def net_new(self) -> int:
        return sum(self.amounts.values())

    @property
    def closing_mrr(self) -> int:
        return self.opening_mrr + self.net_new

    @property
    def closing_customers(self) -> int:
        joined = self.count(RevenueMovement.NEW) + self.count(RevenueMovement.REACTIVATION)
        return self.opening_customers + joined - self.count(RevenueMovement.CHURN)

    @property
    def logo_churn(self) -> Fraction | None:
        """Customers lost over customers paying when the month began."""
        if not self.opening_customers:
            return None
        return Fraction(self.count(RevenueMovement.CHURN), self.opening_customers)

    @property
    def revenue_churn(self) -> Fraction | None:
        """MRR lost to churn and contraction over the month's opening MRR (gross)."""
        if not self.opening_mrr:
            return None
        lost = -(self.amount(RevenueMovement.CHURN) + self.amount(RevenueMovement.CONTRACTION))
        return Fraction(lost, self.opening_mrr)


def month_starts(today: datetime, months: int) -> list[datetime]:
    """The first instants (UTC) of the last ``months`` months, oldest first, this one last."""
    return [datetime(day.year, day.month, 1, tzinfo=UTC) for day in last_months(today, months)]


def monthly_movements(
    starts: list[datetime], opening_mrr: int, opening_customers: int, totals: list[MovementTotal]
) -> list[Month]:
    """Each month's movements and its opening and closing MRR, chained from the MRR and
    paying customers before the first month."""
    by_month: dict[int, list[MovementTotal]] = defaultdict(list)
    for total in totals:
        by_month[total.month].append(total)
    months = []
    mrr, customers = opening_mrr, opening_customers
    for index, start in enumerate(starts):
        month = Month(start, mrr, customers)
        for total in by_month[index]:
            month.amounts[total.movement] = month.amount(total.movement) + total.amount
            month.counts[total.movement] = month.count(total.movement) + total.count
        months.append(month)
        mrr, customers = month.closing_mrr, month.closing_customers
    return months


@dataclass(frozen=True)
class TrialOutcomes:
    """Trials that ended in one month, and how many of them became paying."""

    month: int
    ended: int
    converted: int


def trial_conversion(outcomes: list[TrialOutcomes]) -> tuple[int, int, Fraction | None]:
    """Trials ended, trials converted and the conversion rate over the months given."""
    ended = sum(outcome.ended for outcome in outcomes)
    converted = sum(outcome.converted for outcome in outcomes)
    return ended, converted, Fraction(converted, ended) if ended else None
