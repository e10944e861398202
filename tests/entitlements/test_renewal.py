"""Credits and usage across a real renewal, and the order lots are burnt in."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import select

from app.accounts.models import Customer
from app.clock import now
from app.entitlements.checks import check
from app.entitlements.credits import grant_credits
from app.entitlements.models import CreditLot, LotOrigin
from app.extensions import db
from app.stripe_sandbox import Sandbox
from tests.entitlements.helpers import DAY, balance, record
from tests.factories import new_subscriber


def test_renewal_after_trial_rolls_over_capped_credits_and_resets_usage(
    synced: Flask, sandbox: Sandbox
) -> None:
    customer_id = new_subscriber(synced, "pro_monthly").id
    record(synced, customer_id, "trial-use", "ai_chat", 300_000)
    record(synced, customer_id, "trial-calls", "api_calls", 5)
    assert balance(synced, customer_id) == 700_000

    sandbox.advance(15 * DAY)  # the trial ends; the first paid period opens
    sandbox.deliver_pending()

    # 700,000 were left: the cap keeps 500,000, then the new period's 1,000,000 arrive.
    assert balance(synced, customer_id) == 1_500_000
    with synced.app_context():
        calls = check(db.session.get_one(Customer, customer_id), "api_calls")
    assert calls.used == 0


def test_record_event_burns_soonest_expiry_first_and_never_expiring_last(synced: Flask) -> None:
    customer_id = new_subscriber(synced, "enterprise_monthly").id
    with synced.app_context():
        for source, origin, days in [
            ("bought", LotOrigin.PURCHASED, None),
            ("promo", LotOrigin.PROMOTIONAL, 5),
        ]:
            grant_credits(
                customer_id,
                pool_key="ai_tokens",
                denomination="tokens",
                amount=1_000,
                origin=origin,
                source=source,
                expires_at=now() + timedelta(days=days) if days else None,
            )
        db.session.commit()

    record(synced, customer_id, "burn", "ai_chat", 10_001_500)

    with synced.app_context():
        left = {
            lot.source: lot.remaining
            for lot in db.session.scalars(select(CreditLot).order_by(CreditLot.id))
        }
    # The promotion (5 days) goes first, then the plan grant (3 periods), then what was bought.
    assert left["promo"] == 0
    assert [remaining for source, remaining in left.items() if source.startswith("plan:")] == [0]
    assert left["bought"] == 500
    assert balance(synced, customer_id) == 500
