"""Margin figures against hand-worked examples: roll-ups by month, tier and plan, who is below
its plan's floor, the lowest margins, the risk reason's words, and how fine amounts show."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from flask import Flask

from app.backoffice import risk
from app.backoffice.margin import (
    FloorBreach,
    floor_breach,
    floor_breaches,
    lowest_margins,
    monthly_margins,
    roll_up,
)
from app.billing.margin import PeriodMargin
from app.entitlements.costs import NANOS
from app.money import format_fine_money
from tests.backoffice.test_charts import render, svg_of

JAN, FEB, MAR = (datetime(2026, month, 1, tzinfo=UTC) for month in (1, 2, 3))
TIERS = {"pro_monthly": "pro", "pro_yearly": "pro", "enterprise_monthly": "enterprise"}
FLOORS = {"pro_monthly": Decimal("0.80"), "enterprise_monthly": Decimal("0.60")}
NOW = datetime(2026, 3, 20, tzinfo=UTC)


def period(
    customer_id: int = 1,
    plan_key: str = "pro_monthly",
    starts_at: datetime = MAR,
    ends_at: datetime | None = None,
    recurring: int = 4_900,
    cost_cents: str = "0",
    **fields: object,
) -> PeriodMargin:
    """A period whose cost is ``cost_cents`` (an exact decimal of cents)."""
    start = starts_at
    found = PeriodMargin(
        customer_id=customer_id,
        period_key=f"sub_{customer_id}:{int(start.timestamp())}",
        plan_key=plan_key,
        starts_at=start,
        ends_at=ends_at or start + timedelta(days=31),
        trialing=False,
        currency="usd",
        recurring=recurring,
        overage=Decimal(0),
        floor_billed=0,
        cost_nanos=int(Decimal(cost_cents) * NANOS),
        events=1,
        unpriced=0,
    )
    return replace(found, **fields)  # type: ignore[arg-type]


def test_a_month_adds_up_by_plan_and_tier_with_overage_and_floor_billing_as_revenue() -> None:
    # Pro monthly: $49 + $2.50 overage, cost $12.30 -> margin $39.20 of $51.50 (76.1%).
    # Pro yearly: $490, cost $4.90, $10 billed by the floor -> $500 revenue, margin $495.10.
    # Enterprise: $499, cost $99.80 -> margin $399.20 (80%).
    periods = [
        period(1, "pro_monthly", cost_cents="1230", overage=Decimal(250)),
        period(2, "pro_yearly", recurring=49_000, cost_cents="490", floor_billed=1_000),
        period(3, "enterprise_monthly", recurring=49_900, cost_cents="9980"),
    ]
    month = roll_up(MAR, periods, TIERS, ["pro", "enterprise"])
    assert (month.total.revenue, month.total.cost, month.total.margin) == (
        Decimal(5_150 + 50_000 + 49_900),
        Decimal(1_230 + 490 + 9_980),
        Decimal(105_050 - 11_700),
    )
    assert month.total.margin_ratio == Fraction(93_350, 105_050)
    assert month.total.floor_billed == 1_000
    assert [line.name for line in month.by_tier] == ["pro", "enterprise"]
    pro, enterprise = month.by_tier
    assert (pro.revenue, pro.cost, pro.periods) == (Decimal(55_150), Decimal(1_720), 2)
    assert enterprise.margin_ratio == Fraction(4, 5)
    # Plans by revenue, the highest first.
    assert [line.name for line in month.by_plan] == [
        "pro_yearly",
        "enterprise_monthly",
        "pro_monthly",
    ]
    assert month.by_plan[2].margin == Decimal("3920")


def test_fractions_of_a_cent_add_up_exactly() -> None:
    # Three events of 0.725 cents each (gpt-4o's price for one call): 2.175 cents, exactly.
    periods = [period(n, cost_cents="0.725", recurring=0) for n in range(3)]
    total = roll_up(MAR, periods, TIERS, []).total
    assert total.cost == Decimal("2.175")
    assert total.margin_ratio is None  # no revenue: nothing to divide by


def test_periods_fall_in_the_month_they_start_and_older_ones_are_left_out() -> None:
    periods = [
        period(1, starts_at=datetime(2025, 12, 31, 23, tzinfo=UTC)),  # before the months
        period(2, starts_at=datetime(2026, 1, 15, tzinfo=UTC)),
        period(3, starts_at=datetime(2026, 2, 28, 23, 59, tzinfo=UTC)),
        period(4, starts_at=MAR),
        period(5, starts_at=datetime(2026, 3, 31, tzinfo=UTC)),
    ]
    months = monthly_margins([JAN, FEB, MAR], periods, TIERS, ["pro"])
    assert [[p.customer_id for p in month.periods] for month in months] == [[2], [3], [4, 5]]
    assert [month.total.revenue for month in months] == [4_900, 4_900, 9_800]


def test_a_running_period_under_its_floor_is_a_breach() -> None:
    # $12.25 of cost on $49: margin 75% < 80%.
    below = period(cost_cents="1225")
    breach = floor_breach([below], FLOORS, NOW)
    assert breach == FloorBreach(below, Decimal("0.80"), running=True)
    # At $9.80 the margin is 80% exactly: not below.
    assert floor_breach([period(cost_cents="980")], FLOORS, NOW) is None


def test_the_last_ended_period_counts_when_the_running_one_is_fine() -> None:
    ended = period(starts_at=FEB, ends_at=MAR, cost_cents="2000")
    older = period(starts_at=JAN, ends_at=FEB, cost_cents="3000")
    running = period(starts_at=MAR, cost_cents="100")
    breach = floor_breach([older, ended, running], FLOORS, NOW)
    assert breach is not None
    assert (breach.period, breach.running) == (ended, False)
    # An older period below its floor does not count once a later one ended above it.
    assert floor_breach([older, replace(ended, cost_nanos=0), running], FLOORS, NOW) is None


def test_trials_and_plans_without_a_floor_are_not_judged() -> None:
    trial = period(recurring=0, trialing=True, cost_cents="500")
    assert floor_breach([trial], FLOORS, NOW) is None
    assert floor_breach([period(plan_key="pro_yearly", cost_cents="4900")], FLOORS, NOW) is None
    # No revenue but a cost, outside a trial: below any floor.
    free_ride = period(recurring=0, cost_cents="1")
    assert floor_breach([free_ride], FLOORS, NOW) is not None


def test_breaches_and_lowest_margins_come_lowest_first() -> None:
    # Margins: customer 1 75%, customer 2 50%, customer 3 90% (above its floor).
    periods = [
        period(1, cost_cents="1225"),
        period(2, cost_cents="2450"),
        period(3, cost_cents="490"),
        period(4, recurring=0, trialing=True, cost_cents="100"),  # a trial: left out
        period(5, recurring=0),  # neither revenue nor cost: left out
    ]
    assert [b.period.customer_id for b in floor_breaches(periods, FLOORS, NOW)] == [2, 1]
    assert [p.customer_id for p in lowest_margins(periods, 2)] == [2, 1]
    assert [p.customer_id for p in lowest_margins(periods, 10)] == [2, 1, 3]


def test_the_risk_reason_gives_the_margin_the_floor_and_the_figures() -> None:
    ends = MAR + timedelta(days=31)
    running = FloorBreach(period(cost_cents="1225.5"), Decimal("0.80"), running=True)
    reason = risk.below_margin_floor(running)
    assert reason.kind is risk.Kind.BELOW_MARGIN_FLOOR
    # (4,900 - 1,225.5) / 4,900 = 74.99%
    assert reason.text == (
        "Margin 75.0% < floor 80% this period (to 1 April 2026): "
        "$12.26 of cost against $49.00 of revenue."
    )
    assert reason.deadline == ends
    ended = FloorBreach(
        period(starts_at=FEB, ends_at=MAR, recurring=0, cost_cents="3"), Decimal("0.825"), False
    )
    assert risk.below_margin_floor(ended).text == (
        "Margin none < floor 82.5% last period (to 1 March 2026): "
        "$0.03 of cost against $0.00 of revenue."
    )
    assert risk.below_margin_floor(ended).deadline is None


def test_fine_money_shows_the_currencys_digits_and_up_to_four_more_below_one() -> None:
    assert format_fine_money(4_900, "usd") == "$49.00"
    assert format_fine_money(Decimal("18.75"), "usd") == "$0.1875"
    assert format_fine_money(Decimal("0.725"), "usd") == "$0.00725"
    # From one dollar on, cents are enough.
    assert format_fine_money(Decimal("-123456.7"), "usd") == "-$1,234.57"
    assert format_fine_money(Decimal("47969.1832"), "usd") == "$479.69"
    assert format_fine_money(Decimal("12.3456789"), "usd") == "$0.123457"
    assert format_fine_money(500, "jpy") == "¥500"


def test_a_line_chart_of_percents_skips_a_month_without_a_value(app: Flask) -> None:
    html = render(
        app,
        '{{ line_chart("m", ["Jan", "Feb", "Mar"], [80, none, -5], format="percent") }}',
    )
    points = list(svg_of(html).iter("circle"))
    assert [p.findtext("title") for p in points] == ["Jan: 80%", "Mar: -5%"]
