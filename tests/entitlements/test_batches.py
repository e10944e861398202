"""A batch applies its events in order with the rules of one event, writing set-wise."""

from __future__ import annotations

from flask import Flask

from app.accounts.models import Customer
from app.entitlements.alerts import alerts_for
from app.entitlements.checks import check
from app.entitlements.errors import IdempotencyConflict, LimitExceeded
from app.entitlements.models import UsageEvent
from app.entitlements.usage import (
    UsageEventInput,
    UsageResult,
    customer_by_reference,
    record_batch,
)
from app.extensions import db
from tests.entitlements.helpers import balance, count, record, reference_of
from tests.factories import new_subscriber


def test_record_batch_applies_events_in_order_like_single_events(synced: Flask) -> None:
    customer_id = new_subscriber(synced, "free").id
    reference = reference_of(synced, customer_id)
    events = [
        UsageEventInput(reference, "a", "calls", "api_calls", 600),
        UsageEventInput(reference, "b", "calls", "api_calls", 300),
        UsageEventInput(reference, "c", "calls", "api_calls", 200),
        UsageEventInput(reference, "a", "calls", "api_calls", 600),
        UsageEventInput(reference, "a", "calls", "api_calls", 601),
        UsageEventInput(reference, "d", "calls", "api_calls", 100),
    ]
    with synced.app_context():
        outcomes = record_batch(customer_by_reference, events, db.session.commit)
        db.session.commit()
    first, second, over, again, conflict, last = outcomes
    assert isinstance(first, UsageResult)
    assert isinstance(second, UsageResult)
    assert isinstance(last, UsageResult)
    assert isinstance(again, UsageResult)
    assert [(r.used, r.remaining, r.replayed) for r in (first, second, last)] == [
        (600, 400, False),
        (900, 100, False),
        (1_000, 0, False),
    ]
    assert isinstance(over, LimitExceeded)
    assert (again, again.replayed, again.event_id) == (first, True, first.event_id)
    assert isinstance(conflict, IdempotencyConflict)
    assert count(synced, UsageEvent) == 3
    # A retry of a key recorded by the batch answers the same as a retry of a single event.
    assert record(synced, customer_id, "b", "api_calls", 300, event_name="calls") == second
    with synced.app_context():
        customer = db.session.get_one(Customer, customer_id)
        assert check(customer, "api_calls").used == 1_000
        assert [(a.threshold, a.used) for a in alerts_for(customer)] == [(80, 900), (100, 1_000)]


def test_batch_with_recorded_and_new_keys_replays_the_old_and_counts_each_new_once(
    synced: Flask,
) -> None:
    customer_id = new_subscriber(synced, "free").id
    reference = reference_of(synced, customer_id)
    with synced.app_context():
        (first,) = record_batch(
            customer_by_reference,
            [UsageEventInput(reference, "a", "calls", "api_calls", 100)],
            db.session.commit,
        )
        db.session.commit()
        events = [
            UsageEventInput(reference, "b", "calls", "api_calls", 200),
            UsageEventInput(reference, "a", "calls", "api_calls", 100),
            UsageEventInput(reference, "c", "calls", "api_calls", 300),
        ]
        new, again, last = record_batch(customer_by_reference, events, db.session.commit)
        db.session.commit()
    assert isinstance(new, UsageResult)
    assert isinstance(last, UsageResult)
    assert (again, getattr(again, "replayed", None)) == (first, True)
    assert [(r.used, r.replayed) for r in (new, last)] == [(300, False), (600, False)]
    assert count(synced, UsageEvent) == 3
    with synced.app_context():
        assert check(db.session.get_one(Customer, customer_id), "api_calls").used == 600


def test_record_batch_draws_credits_across_events_in_burn_order(synced: Flask) -> None:
    customer_id = new_subscriber(synced, "enterprise_monthly").id
    reference = reference_of(synced, customer_id)
    events = [
        UsageEventInput(reference, f"chat-{n}", "chat", "ai_chat", 4_000_000) for n in range(3)
    ]
    with synced.app_context():
        results = record_batch(customer_by_reference, events, db.session.commit)
        db.session.commit()
    assert all(isinstance(result, UsageResult) for result in results)
    draws = [[d.amount for d in r.from_credits] for r in results if isinstance(r, UsageResult)]
    overage = [r.overage_units for r in results if isinstance(r, UsageResult)]
    balances = [r.credit_balance for r in results if isinstance(r, UsageResult)]
    assert draws == [[4_000_000], [4_000_000], [2_000_000]]
    assert overage == [0, 0, 2_000_000]
    assert balances == [6_000_000, 2_000_000, 0]
    assert balance(synced, customer_id) == 0
