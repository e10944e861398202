"""Plan credits: grants once per period, each rollover policy at renewal, top-ups, clawback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from app.catalog import current_catalog
from app.entitlements.credits import (
    Period,
    end_plan_credits,
    grant_credits,
    grant_plan_credits,
    top_up_plan_credits,
)
from app.entitlements.ledger import expire_due
from app.entitlements.models import CreditLedgerEntry, LedgerKind, LotOrigin
from app.extensions import db
from tests.entitlements.helpers import balance, new_customer

START = datetime(2026, 1, 1, tzinfo=UTC)


def period(n: int, days: int = 30) -> Period:
    """The n-th monthly period (0-based) of a subscription."""
    start = START + timedelta(days=days * n)
    return Period("sub_test", start=start, end=start + timedelta(days))


def renew(app: Flask, customer_id: int, plan_key: str, *periods: Period) -> None:
    """Grant the plan's credits for each period in turn, as sync does when they are paid."""
    with app.app_context():
        plan = current_catalog().plans[plan_key]
        for each in periods:
            grant_plan_credits(customer_id, plan, each)
        db.session.commit()


def kinds(app: Flask) -> list[tuple[str, int]]:
    """The ledger, oldest first, as (kind, amount)."""
    with app.app_context():
        entries = db.session.scalars(select(CreditLedgerEntry).order_by(CreditLedgerEntry.id))
        return [(entry.kind.value, entry.amount) for entry in entries]


def test_grant_plan_credits_same_period_twice_grants_once(app: Flask) -> None:
    customer = new_customer(app)
    renew(app, customer, "pro_monthly", period(0), period(0))
    assert balance(app, customer) == 1_000_000
    assert kinds(app) == [("grant", 1_000_000)]


def test_renewal_rollover_none_expires_what_is_left(app: Flask) -> None:
    customer = new_customer(app)
    renew(app, customer, "starter_monthly", period(0), period(1), period(1))
    assert balance(app, customer) == 200_000
    assert kinds(app) == [("grant", 200_000), ("expire", -200_000), ("grant", 200_000)]


def test_renewal_rollover_full_keeps_everything(app: Flask) -> None:
    customer = new_customer(app)
    renew(app, customer, "pro_yearly", period(0, 365), period(1, 365))
    assert balance(app, customer) == 24_000_000
    assert kinds(app) == [
        ("grant", 12_000_000),
        ("rollover", -12_000_000),
        ("rollover", 12_000_000),
        ("grant", 12_000_000),
    ]


def test_renewal_rollover_capped_keeps_at_most_the_cap(app: Flask) -> None:
    customer = new_customer(app)
    renew(app, customer, "pro_monthly", period(0), period(1), period(2))
    # Each renewal keeps 500,000 of what is left and expires the rest.
    assert balance(app, customer) == 1_500_000
    assert ("expire", -500_000) in kinds(app)


def test_renewal_rollover_expire_after_periods_drops_the_oldest_grant(app: Flask) -> None:
    customer = new_customer(app)
    renew(app, customer, "enterprise_monthly", period(0), period(1), period(2))
    assert balance(app, customer) == 30_000_000
    renew(app, customer, "enterprise_monthly", period(3))
    assert balance(app, customer) == 30_000_000
    assert kinds(app)[-2:] == [("expire", -10_000_000), ("grant", 10_000_000)]


def test_expire_due_lazily_expires_once(app: Flask) -> None:
    customer = new_customer(app)
    renew(app, customer, "starter_monthly", period(0))
    with app.app_context():
        expire_due(customer, period(0).end)
        expire_due(customer, period(0).end + timedelta(days=1))
        db.session.commit()
    assert balance(app, customer) == 0


def test_top_up_plan_credits_grants_the_difference_once(app: Flask) -> None:
    customer = new_customer(app)
    renew(app, customer, "starter_monthly", period(0))
    with app.app_context():
        plans = current_catalog().plans
        for _ in range(2):
            top_up_plan_credits(customer, plans["starter_monthly"], plans["pro_monthly"], period(0))
        top_up_plan_credits(customer, plans["pro_monthly"], plans["starter_monthly"], period(0))
        db.session.commit()
    assert balance(app, customer) == 1_000_000


@pytest.mark.parametrize("origin", [LotOrigin.PURCHASED, LotOrigin.PROMOTIONAL])
def test_end_plan_credits_claws_back_the_plan_and_keeps_purchased_and_promotional(
    app: Flask, origin: LotOrigin
) -> None:
    customer = new_customer(app)
    renew(app, customer, "pro_monthly", period(0))
    with app.app_context():
        grant_credits(
            customer,
            pool_key="ai_tokens",
            denomination="tokens",
            amount=5_000,
            origin=origin,
            source="order-1",
        )
        assert end_plan_credits(customer, "sub_test", clawback=True) == 1_000_000
        assert end_plan_credits(customer, "sub_test", clawback=True) == 0
        db.session.commit()
    assert balance(app, customer) == 5_000
    assert [kind for kind, _ in kinds(app)] == ["grant", "grant", LedgerKind.CLAWBACK.value]


def test_rollover_never_reaches_into_another_subscription(app: Flask) -> None:
    customer = new_customer(app)
    renew(app, customer, "pro_monthly", period(0))
    # A new subscription's first period: the other's lot is not capped into it.
    renew(app, customer, "pro_monthly", Period("sub_other", period(1).start, period(1).end))
    assert balance(app, customer) == 2_000_000
    assert kinds(app) == [("grant", 1_000_000), ("grant", 1_000_000)]


def test_end_plan_credits_at_period_end_expires_only_that_subscription(app: Flask) -> None:
    customer = new_customer(app)
    renew(app, customer, "pro_monthly", period(0))
    renew(app, customer, "pro_monthly", Period("sub_other", period(0).start, period(0).end))
    with app.app_context():
        assert end_plan_credits(customer, "sub_test", clawback=False) == 1_000_000
        db.session.commit()
    assert balance(app, customer) == 1_000_000
    assert kinds(app)[-1] == (LedgerKind.EXPIRE.value, -1_000_000)
