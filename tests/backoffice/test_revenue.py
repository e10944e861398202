"""Revenue figures against hand-worked examples, and the revenue page as an operator sees it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from flask import Flask
from sqlalchemy import select

from app.backoffice.revenue import (
    MovementTotal,
    SubscriptionGroup,
    TrialOutcomes,
    month_starts,
    monthly_movements,
    revenue_now,
    trial_conversion,
)
from app.billing.models import RevenueChange, RevenueMovement, RevenueSnapshot
from app.billing.revenue import (
    Discount,
    Point,
    RecurringItem,
    classify,
    history,
    monthly_amount,
    take_snapshot,
)
from app.clock import now
from app.extensions import db
from tests.factories import active_customer, canceled_customer, past_due_customer, trialing_customer
from tests.web import WebClient, visible_text

NEW, EXPANSION, CONTRACTION, CHURN, REACTIVATION = (
    RevenueMovement.NEW,
    RevenueMovement.EXPANSION,
    RevenueMovement.CONTRACTION,
    RevenueMovement.CHURN,
    RevenueMovement.REACTIVATION,
)


def _item(amount: int, interval: str = "month", quantity: int = 1) -> RecurringItem:
    return RecurringItem(amount, interval, 1, quantity)


@pytest.mark.parametrize(
    ("items", "discounts", "expected"),
    [
        ([_item(4_900)], [], 4_900),
        # A yearly plan is worth a twelfth of its price a month: $490 a year is $40.83.
        ([_item(49_000, "year")], [], 4_083),
        # Three seats at $19.
        ([_item(1_900, quantity=3)], [], 5_700),
        # 20% off $49.
        ([_item(4_900)], [Discount(percent_off=Decimal(20))], 3_920),
        # $100 off each invoice of a $1,200 yearly plan: ($1,200 - $100) / 12 = $91.67.
        ([_item(120_000, "year")], [Discount(amount_off=10_000)], 9_167),
        # A discount larger than the price leaves nothing, never less.
        ([_item(1_900)], [Discount(amount_off=5_000)], 0),
        ([], [], 0),
    ],
)
def test_monthly_amount_respects_interval_quantity_and_discounts(
    items: list[RecurringItem], discounts: list[Discount], expected: int
) -> None:
    assert monthly_amount(items, discounts) == expected


@pytest.mark.parametrize(
    ("before", "after", "earned_before", "expected"),
    [
        (0, 4_900, False, NEW),
        (0, 4_900, True, REACTIVATION),
        (1_900, 4_900, True, EXPANSION),
        (4_900, 1_900, True, CONTRACTION),
        (4_900, 0, True, CHURN),
        (4_900, 4_900, True, None),
    ],
)
def test_classify_names_each_movement(
    before: int, after: int, earned_before: bool, expected: RevenueMovement | None
) -> None:
    assert classify(before, after, earned_before) is expected


JAN, FEB, MAR = (datetime(2026, month, 1, tzinfo=UTC) for month in (1, 2, 3))


def test_a_mid_month_upgrade_a_churn_and_a_reactivation_add_up_month_by_month() -> None:
    # Two customers paying $19 and $49 before January (opening MRR $68). In January the first
    # upgrades mid-month to $49 (+$30) and a new one joins at $19; in February the second
    # churns (-$49); in March it comes back on $19.
    months = monthly_movements(
        [JAN, FEB, MAR],
        6_800,
        2,
        [
            MovementTotal(0, EXPANSION, 3_000, 1),
            MovementTotal(0, NEW, 1_900, 1),
            MovementTotal(1, CHURN, -4_900, 1),
            MovementTotal(2, REACTIVATION, 1_900, 1),
        ],
    )
    january, february, march = months
    assert (january.opening_mrr, january.net_new, january.closing_mrr) == (6_800, 4_900, 11_700)
    assert (january.opening_customers, january.closing_customers) == (2, 3)
    assert january.logo_churn == 0
    assert january.revenue_churn == 0
    assert (february.opening_mrr, february.closing_mrr, february.closing_customers) == (
        11_700,
        6_800,
        2,
    )
    assert february.logo_churn == Fraction(1, 3)
    assert february.revenue_churn == Fraction(4_900, 11_700)
    assert (march.closing_mrr, march.closing_customers) == (8_700, 3)
    assert march.amount(REACTIVATION) == 1_900
    assert march.count(REACTIVATION) == 1


def test_a_contraction_counts_in_revenue_churn_but_not_in_logo_churn() -> None:
    (month,) = monthly_movements([JAN], 10_000, 2, [MovementTotal(0, CONTRACTION, -3_000, 1)])
    assert month.logo_churn == 0
    assert month.revenue_churn == Fraction(3, 10)
    assert month.closing_customers == 2


def test_revenue_now_counts_past_due_apart_and_trials_as_pipeline() -> None:
    current = revenue_now(
        [
            SubscriptionGroup("pro", "pro_monthly", "active", 2, 9_800),
            SubscriptionGroup("pro", "pro_yearly", "active", 1, 4_083),
            SubscriptionGroup("pro", "pro_monthly", "past_due", 1, 4_900),
            SubscriptionGroup("starter", "starter_monthly", "trialing", 3, 5_700),
        ],
        ["free", "starter", "pro"],
    )
    assert current.total.mrr == 9_800 + 4_083 + 4_900
    assert current.total.arr == 12 * (9_800 + 4_083 + 4_900)
    assert current.total.past_due_mrr == 4_900
    assert (current.total.trialing, current.total.trial_pipeline) == (3, 5_700)
    assert [line.name for line in current.by_tier] == ["starter", "pro"]
    pro = current.by_tier[1]
    assert (pro.mrr, pro.subscriptions) == (18_783, 4)
    assert current.by_plan[0].name == "pro_monthly"


def test_trial_conversion_over_the_months() -> None:
    assert trial_conversion([TrialOutcomes(0, 4, 3), TrialOutcomes(2, 4, 1)]) == (
        8,
        4,
        Fraction(1, 2),
    )
    assert trial_conversion([]) == (0, 0, None)


def test_month_starts_go_back_across_a_year() -> None:
    starts = month_starts(datetime(2026, 2, 14, tzinfo=UTC), 3)
    assert starts == [datetime(2025, 12, 1, tzinfo=UTC), JAN, FEB]


def test_history_from_invoices_sums_subscriptions_and_ends_them() -> None:
    # A monthly subscription at $19 from January, upgraded to $49 in March, cancelled in May;
    # a second subscription at $10 from February to April.
    series = history(
        [
            Point(datetime(2026, 1, 5, tzinfo=UTC), "sub_a", 1_900),
            Point(datetime(2026, 2, 5, tzinfo=UTC), "sub_a", 1_900),
            Point(datetime(2026, 2, 10, tzinfo=UTC), "sub_b", 1_000),
            Point(datetime(2026, 3, 5, tzinfo=UTC), "sub_a", 4_900),
            Point(datetime(2026, 4, 10, tzinfo=UTC), "sub_b", 0),
            Point(datetime(2026, 5, 5, tzinfo=UTC), "sub_a", 0),
        ]
    )
    assert [mrr for _, mrr in series] == [1_900, 2_900, 5_900, 4_900, 0]


# Through the sandbox: the sync path records what it sees, the page shows it.


def test_the_sync_path_records_new_business_and_churn_as_they_happen(synced: Flask) -> None:
    active_customer(synced, "pro_monthly", email="pro@example.com")
    canceled_customer(synced, "starter_monthly", email="gone@example.com", card=None)
    with synced.app_context():
        changes = db.session.scalars(select(RevenueChange).order_by(RevenueChange.id)).all()
        movements = [(change.movement, change.mrr_before, change.mrr_after) for change in changes]
    # The trial of the cancelled one never earned anything, so it left no revenue change.
    assert movements == [(NEW, 0, 4_900)]


def test_an_in_arrears_plan_is_worth_its_fee_though_stripe_meters_it(
    synced: Flask, enterprise_customer: str
) -> None:
    with synced.app_context():
        change = db.session.scalars(select(RevenueChange)).one()
    assert (change.movement, change.mrr_after) == (NEW, 49_900)


def test_the_revenue_page_shows_mrr_by_tier_past_due_and_the_pipeline(
    synced: Flask, operator: WebClient
) -> None:
    active_customer(synced, "pro_monthly", email="pro@example.com")
    active_customer(synced, "pro_yearly", email="yearly@example.com")
    past_due_customer(synced, "starter_monthly", email="late@example.com")
    trialing_customer(synced, "starter_monthly", email="trying@example.com")

    page = operator.get("/admin/revenue")
    assert page.status_code == 200
    text = visible_text(page.text)
    # $49 + $490 / 12 = $89.83 paying, $19 of it past due; one $19 trial in the pipeline.
    mrr = 4_900 + 4_083 + 1_900
    assert "MRR $108.83" in text
    assert "ARR $1,305.96" in text
    # The trial that ended on a card that fails is past due: not converted until it is paid.
    assert "2 of 3 trials ended" in text
    assert "of which past due $19" in text
    assert "$19 a month if all convert" in text
    assert "<svg" in page.text
    assert 'id="movements-chart"' in page.text

    csv = operator.get("/admin/revenue?format=csv")
    assert csv.headers["content-type"].startswith("text/csv")
    this_month = now_month(synced)
    row = next(line for line in csv.text.splitlines() if line.startswith(this_month))
    assert row.split(",")[-4] == str(mrr)


def now_month(app: Flask) -> str:
    with app.app_context():
        return now().strftime("%Y-%m")


def test_the_daily_snapshot_keeps_each_plan_once_a_day(synced: Flask) -> None:
    active_customer(synced, "pro_monthly", email="pro@example.com")
    trialing_customer(synced, "starter_monthly", email="trying@example.com")
    with synced.app_context():
        today = now().date()
        assert take_snapshot(today) == 2
        db.session.commit()
        assert take_snapshot(today) == 0
        rows = {
            row.plan_key: (row.mrr, row.subscriptions, row.trialing, row.trial_pipeline)
            for row in db.session.scalars(select(RevenueSnapshot))
        }
        assert take_snapshot(today + timedelta(days=1)) == 2
    assert rows == {"pro_monthly": (4_900, 1, 0, 0), "starter_monthly": (0, 0, 1, 1_900)}


@pytest.mark.parametrize("page", ["/admin/revenue", "/admin/revenue?format=csv&table=plans"])
def test_the_revenue_page_is_for_operators_only(
    client: WebClient, logged_in: WebClient, page: str
) -> None:
    assert logged_in.get(page).status_code == 404
    logged_in.cookies.clear()
    assert client.get(page).headers["location"].startswith("/login?next=/admin/revenue")


def test_flask_revenue_show_prints_what_the_page_shows(synced: Flask) -> None:
    active_customer(synced, "pro_monthly", email="pro@example.com")
    result = synced.test_cli_runner().invoke(args=["revenue", "show"])
    assert result.exit_code == 0, result.output
    assert "$49" in result.output
    assert "$588" in result.output  # ARR
    assert "Trial to paid over 12 months: 100.0% (1 of 1 trials ended)." in result.output
