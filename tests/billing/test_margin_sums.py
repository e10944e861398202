"""The margins summed and picked in SQL (app/billing/margin_sums.py) are margin.py's figures:
over a volume fill with overage, floor billing, trials and costs, each month's roll-up, the
customers below their floor and the lowest margins come out the same as margin.py's pure
functions over every period."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import text

from app.backoffice.margin import floor_breaches, lowest_margins, monthly_margins, monthly_sums
from app.backoffice.margin_data import floors, twelve_months
from app.billing.margin import period_margins
from app.billing.margin_sums import below_floor_candidates, lowest_candidates, margin_sums
from app.catalog import current_catalog
from app.clock import now
from app.extensions import db
from bench.volume_data import Volume, fill


@pytest.fixture
def filled(app: Flask) -> Iterator[Flask]:
    """Forty customers over a year, then: billable overage on some of their events (api_calls
    and ai_chat, priced by some plans and not others), what the floor billed some periods, and
    costs that put some periods below their floor."""
    with app.app_context():
        fill(Volume(customers=40, months=12, usage_events=4_000, audit_entries=5, seed=3))
        db.session.execute(
            text(
                "INSERT INTO overage_outbox "
                "(usage_event_id, customer_id, event_name, period_key, units, occurred_at) "
                "SELECT id, customer_id, 'tollgate_' || feature_key, period_key, "
                "1 + id % 997, occurred_at FROM usage_events WHERE id % 5 = 0"
            )
        )
        db.session.execute(
            text("UPDATE billing_periods SET floor_billed = 1 + id % 4000 WHERE id % 6 = 0")
        )
        # A cost of 0 to 120% of the recurring charge on every third period: some below their
        # floor, and many with exactly the same margin.
        db.session.execute(
            text(
                "INSERT INTO usage_costs "
                "(period_key, customer_id, feature_key, model, nanos, events, unpriced) "
                "SELECT period_key, customer_id, 'ai_chat', 'acme/house-model', "
                "recurring_amount * 200000000 * (id % 7), 1 + id % 3, id % 2 "
                "FROM billing_periods WHERE id % 3 = 0"
            )
        )
        db.session.commit()
        yield app


def test_the_months_summed_in_sql_are_the_periods_added_up(filled: Flask) -> None:
    with filled.app_context():
        starts = twelve_months()
        catalog = current_catalog()
        tier_of = {key: plan.tier for key, plan in catalog.plans.items()}
        tiers = list(catalog.tiers)
        margins = period_margins(since=starts[0])
        assert any(margin.overage for margin in margins)
        assert any(margin.floor_billed for margin in margins)
        summed = monthly_sums(starts, margin_sums(starts), tier_of, tiers)
        one_by_one = monthly_margins(starts, margins, tier_of, tiers)
        assert sum(month.total.periods for month in summed) == len(margins)
        for got, expected in zip(summed, one_by_one, strict=True):
            assert (got.start, got.total, got.by_tier, got.by_plan) == (
                expected.start,
                expected.total,
                expected.by_tier,
                expected.by_plan,
            )


def test_the_periods_picked_in_sql_are_those_margin_py_lists(filled: Flask) -> None:
    with filled.app_context():
        starts = twelve_months()
        moment = now()
        plan_floors = floors()
        margins = period_margins(since=starts[0])
        every_breach = floor_breaches(margins, plan_floors, moment)
        assert every_breach
        below = period_margins(period_keys=below_floor_candidates(plan_floors, starts[0], moment))
        assert floor_breaches(below, plan_floors, moment) == every_breach
        for index, start in enumerate(starts):
            until = starts[index + 1] if index + 1 < len(starts) else None
            month = [
                m for m in margins if m.starts_at >= start and (not until or m.starts_at < until)
            ]
            for count in (1, 3, 10):
                keys = lowest_candidates(
                    start, until or moment.replace(year=moment.year + 1), count
                )
                assert lowest_margins(period_margins(period_keys=keys), count) == lowest_margins(
                    month, count
                )
