"""The read-only check: one query, the usage counter of the period, unexpired credits only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.accounts.mirror import Subscription, SubscriptionStatus
from app.accounts.models import Customer
from app.clock import now
from app.entitlements.checks import check, check_reference
from app.entitlements.credits import grant_credits
from app.entitlements.models import CreditLedgerEntry, LotOrigin, UsageCounter, UsageEvent
from app.extensions import db
from tests.conftest import MigratedDatabase
from tests.databases import cut_connections
from tests.entitlements.helpers import balance, count, record
from tests.factories import new_subscriber


def test_check_reads_the_counter_of_a_period_that_starts_mid_second(app: Flask) -> None:
    # The counter is joined on the period key in SQL; a start with microseconds must still match.
    with app.app_context():
        start = now() - timedelta(days=1, microseconds=123_457)
        customer = Customer(reference_id="api-1", email="api-1@example.com")
        db.session.add(customer)
        db.session.flush()
        db.session.add(
            Subscription(
                stripe_subscription_id="sub_mid_second",
                customer_id=customer.id,
                plan_key="pro_monthly",
                stripe_price_id="price_x",
                status=SubscriptionStatus.ACTIVE,
                current_period_start=start,
                current_period_end=start + timedelta(days=30),
                stripe_created=start,
            )
        )
        db.session.commit()
        customer_id = customer.id
    record(app, customer_id, "e1", "api_calls", 7)
    record(app, customer_id, "e2", "api_calls", 5)
    with app.app_context():
        by_id = check(db.session.get_one(Customer, customer_id), "api_calls")
        by_reference = check_reference("api-1", "api_calls")
        counted = db.session.scalar(select(func.sum(UsageCounter.used)))
        recorded = db.session.scalar(select(func.sum(UsageEvent.units)))
        assert check_reference("nobody", "api_calls") is None
    assert by_reference == by_id
    assert (by_id.used, by_id.remaining, by_id.subscription_status) == (12, 999_988, "active")
    assert counted == recorded == 12


def test_check_leaves_out_expired_credits_and_writes_nothing(synced: Flask) -> None:
    customer_id = new_subscriber(synced, "enterprise_monthly").id
    with synced.app_context():
        grant_credits(
            customer_id,
            pool_key="ai_tokens",
            denomination="tokens",
            amount=500,
            origin=LotOrigin.PROMOTIONAL,
            source="promo",
            expires_at=now() - timedelta(seconds=1),
        )
        db.session.commit()
    entries = count(synced, CreditLedgerEntry)
    with synced.app_context():
        result = check(db.session.get_one(Customer, customer_id), "ai_chat")
        db.session.commit()
    assert result.credit_balance == 10_000_000
    assert count(synced, CreditLedgerEntry) == entries  # the expiry waits for a write

    record(synced, customer_id, "chat-1", "ai_chat", 100)
    assert count(synced, CreditLedgerEntry) == entries + 2  # the expiry, then the draw
    assert balance(synced, customer_id) == 10_000_000 - 100


def test_a_check_sees_its_callers_transaction_and_hands_back_a_transactional_connection(
    app: Flask,
) -> None:
    # Inside a session transaction the check reads there, so it sees what was written so far.
    with app.app_context():
        db.session.add(Customer(reference_id="pending", email="pending@example.com"))
        db.session.flush()
        pending = check_reference("pending", "api_calls")
        db.session.rollback()
    assert pending is not None
    assert pending.reason == "no_subscription"
    # Outside one it reads on the thread's own connection (in autocommit on PostgreSQL), and the
    # pool's connections stay as the session expects them: a rolled-back write leaves nothing.
    for attempt in range(3):
        with app.app_context():
            assert check_reference("pending", "api_calls") is None
        with app.app_context():
            db.session.add(Customer(reference_id=f"undone-{attempt}", email=f"u{attempt}@x.test"))
            db.session.flush()
            db.session.rollback()
            assert db.session.scalar(select(func.count()).select_from(Customer)) == 0


def test_a_check_outside_a_transaction_sees_what_was_committed_since_its_last(app: Flask) -> None:
    # The thread keeps its reading connection between checks; it must hold no snapshot.
    for attempt in range(2):
        with app.app_context():
            assert check_reference(f"late-{attempt}", "api_calls") is None
        with app.app_context():
            db.session.add(Customer(reference_id=f"late-{attempt}", email=f"l{attempt}@x.test"))
            db.session.commit()
        with app.app_context():
            late = check_reference(f"late-{attempt}", "api_calls")
        assert late is not None
        assert late.reason == "no_subscription"


def test_a_check_answers_after_the_database_cut_its_connection(
    app: Flask, migrated_database: MigratedDatabase
) -> None:
    if migrated_database.backend != "postgresql":
        pytest.skip("a server that closes connections is a PostgreSQL matter")
    with app.app_context():
        db.session.add(Customer(reference_id="kept", email="kept@example.com"))
        db.session.commit()
        assert check_reference("kept", "api_calls") is not None
        db.engine.dispose()  # the pool's connections go; the check's reader is the thread's own
    assert cut_connections(migrated_database.url, "true") >= 1  # the reader, at least
    with app.app_context():
        again = check_reference("kept", "api_calls")
    assert again is not None
    assert again.reason == "no_subscription"
