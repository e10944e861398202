"""Checks, simulations and usage events for customers on real subscriptions."""

from __future__ import annotations

import pytest
from flask import Flask

from app.accounts.mirror import Subscription
from app.accounts.models import Customer
from app.billing.gateway import gateway
from app.billing.sync import mirror_subscription
from app.entitlements.alerts import alerts_for
from app.entitlements.checks import check, simulate
from app.entitlements.errors import (
    IdempotencyConflict,
    InvalidUsage,
    LimitExceeded,
    NotEntitled,
    UnknownCustomer,
    UnknownFeature,
)
from app.entitlements.models import OverageOutbox, UsageEvent
from app.entitlements.summary import pool_summary, usage_summary
from app.entitlements.usage import UsageEventInput, customer_by_reference, record_batch
from app.extensions import db
from tests.entitlements.helpers import balance, count, new_customer, record, reference_of
from tests.factories import new_subscriber


def test_check_without_subscription_is_denied_with_no_subscription(app: Flask) -> None:
    customer_id = new_customer(app)
    with app.app_context():
        result = check(db.session.get_one(Customer, customer_id), "ai_chat")
    assert (result.is_allowed, result.reason) == (False, "no_subscription")


@pytest.mark.parametrize(("plan_key", "allowed"), [("pro_monthly", True), ("free", False)])
def test_check_boolean_feature_follows_the_plan(
    synced: Flask, plan_key: str, allowed: bool
) -> None:
    customer_id = new_subscriber(synced, plan_key).id
    with synced.app_context():
        result = check(db.session.get_one(Customer, customer_id), "sso")
    assert result.is_allowed is allowed
    assert result.reason == (None if allowed else "feature_not_in_plan")


def test_record_event_past_hard_limit_is_refused_and_writes_nothing(synced: Flask) -> None:
    customer_id = new_subscriber(synced, "free").id
    first = record(synced, customer_id, "e1", "api_calls", 900)
    assert (first.from_included, first.used, first.remaining) == (900, 900, 100)
    with synced.app_context():
        customer = db.session.get_one(Customer, customer_id)
        denied = check(customer, "api_calls", 101)
        assert (denied.is_allowed, denied.reason, denied.used, denied.limit) == (
            False,
            "limit_exceeded",
            900,
            1_000,
        )
        assert simulate(customer, "api_calls", 101).would_exceed_limit
    with pytest.raises(LimitExceeded):
        record(synced, customer_id, "e2", "api_calls", 101)
    assert count(synced, UsageEvent) == 1


def test_record_event_same_key_returns_first_result_and_changes_nothing(synced: Flask) -> None:
    customer_id = new_subscriber(synced, "pro_monthly").id
    first = record(synced, customer_id, "chat-1", "ai_chat", 1_000, cost_input={"model": "m"})
    again = record(synced, customer_id, "chat-1", "ai_chat", 1_000, cost_input={"model": "m"})
    assert again == first
    assert (first.replayed, again.replayed) == (False, True)
    assert balance(synced, customer_id) == 999_000
    with pytest.raises(IdempotencyConflict, match="units"):
        record(synced, customer_id, "chat-1", "ai_chat", 2_000, cost_input={"model": "m"})
    with pytest.raises(IdempotencyConflict, match="cost_input"):
        record(synced, customer_id, "chat-1", "ai_chat", 1_000, cost_input={"model": "x"})
    assert count(synced, UsageEvent) == 1
    assert balance(synced, customer_id) == 999_000


def test_event_kept_in_the_earlier_object_form_replays_its_first_result(synced: Flask) -> None:
    # Earlier versions kept an event's result as an object that repeated the row's key, feature
    # and units; a retry of such an event must still answer it.
    customer_id = new_subscriber(synced, "enterprise_monthly").id
    first = record(synced, customer_id, "chat-1", "ai_chat", 1_000)
    assert [(draw.pool_key, draw.amount) for draw in first.from_credits] == [("ai_tokens", 1_000)]
    with synced.app_context():
        event = db.session.scalars(db.select(UsageEvent)).one()
        event.result = {
            "idempotency_key": "chat-1",
            "feature_key": "ai_chat",
            "units": 1_000,
            "from_included": first.from_included,
            "from_credits": [
                {"pool_key": "ai_tokens", "denomination": "tokens", "amount": 1_000},
            ],
            "overage_units": first.overage_units,
            "overage_billable": first.overage_billable,
            "used": first.used,
            "limit": first.limit,
            "remaining": first.remaining,
            "credit_balance": first.credit_balance,
        }
        db.session.commit()
    again = record(synced, customer_id, "chat-1", "ai_chat", 1_000)
    assert (again, again.replayed) == (first, True)
    assert count(synced, UsageEvent) == 1
    assert balance(synced, customer_id) == 9_999_000


def test_record_event_cancelled_subscription_is_refused_not_entitled(synced: Flask) -> None:
    customer_id = new_subscriber(synced, "enterprise_monthly").id
    with synced.app_context():
        subscription = db.session.scalars(db.select(Subscription)).one()
        gateway().client.v1.subscriptions.cancel(subscription.stripe_subscription_id)
        mirror_subscription(subscription.stripe_subscription_id)
        result = check(db.session.get_one(Customer, customer_id), "ai_chat")
    assert (result.reason, result.subscription_status) == ("not_entitled", "canceled")
    # Cancelled in Stripe's dashboard mid-period: the plan's credits are clawed back.
    assert balance(synced, customer_id) == 0
    with pytest.raises(NotEntitled) as refused:
        record(synced, customer_id, "late", "ai_chat", 10)
    assert (refused.value.status, refused.value.code) == (403, "not_entitled")
    assert count(synced, UsageEvent) == 0


def test_record_event_draws_credits_then_bills_overage_through_the_outbox(synced: Flask) -> None:
    customer_id = new_subscriber(synced, "enterprise_monthly").id
    with synced.app_context():
        preview = simulate(db.session.get_one(Customer, customer_id), "ai_chat", 10_500_000)
    assert [(d.pool_key, d.amount) for d in preview.from_credits] == [("ai_tokens", 10_000_000)]
    assert (preview.overage_units, preview.overage_billable) == (500_000, True)
    assert count(synced, UsageEvent) == 0

    result = record(synced, customer_id, "big", "ai_chat", 10_500_000)
    assert result.from_credits == preview.from_credits
    assert (result.overage_units, result.credit_balance) == (500_000, 0)
    assert balance(synced, customer_id) == 0
    assert count(synced, OverageOutbox) == 1
    with synced.app_context():
        customer = db.session.get_one(Customer, customer_id)
        assert check(customer, "ai_chat").is_allowed  # billable overage keeps it allowed
        alerts = [(a.subject.value, a.key, a.threshold) for a in alerts_for(customer)]
        assert alerts == [("credits", "ai_tokens", 80), ("credits", "ai_tokens", 100)]
        pool = pool_summary(customer)[0]
        assert (pool.balance, pool.renews_amount) == (0, 10_000_000)
        assert pool.rollover_words == "Each grant lasts 3 billing periods."


def test_record_event_without_credits_or_overage_is_unbilled_and_check_denies(
    synced: Flask,
) -> None:
    customer_id = new_subscriber(synced, "starter_monthly").id
    result = record(synced, customer_id, "t1", "ai_chat", 250_000)
    assert (result.overage_units, result.overage_billable) == (50_000, False)
    assert count(synced, OverageOutbox) == 0
    with synced.app_context():
        denied = check(db.session.get_one(Customer, customer_id), "ai_chat")
    assert (denied.is_allowed, denied.reason, denied.credit_balance) == (
        False,
        "insufficient_credits",
        0,
    )


def test_usage_alerts_at_80_and_100_percent_are_recorded_once(synced: Flask) -> None:
    customer_id = new_subscriber(synced, "free").id
    for key, units in [("a", 800), ("b", 100), ("c", 50), ("d", 50)]:
        record(synced, customer_id, key, "api_calls", units)
    with synced.app_context():
        customer = db.session.get_one(Customer, customer_id)
        assert [(a.key, a.threshold) for a in alerts_for(customer)] == [
            ("api_calls", 80),
            ("api_calls", 100),
        ]
        usage = {row.feature_key: row for row in usage_summary(customer)}
    assert (usage["api_calls"].used, usage["api_calls"].percent) == (1_000, 100)
    assert (usage["ai_chat"].used, usage["ai_chat"].percent) == (0, 0)


@pytest.mark.parametrize(
    ("feature", "units", "error", "code"),
    [
        ("ai_chat", 0, InvalidUsage, "invalid_units"),
        ("ai_chat", -5, InvalidUsage, "invalid_units"),
        ("ai_chat", 10**9 + 1, InvalidUsage, "invalid_units"),
        ("ai_chat", True, InvalidUsage, "invalid_units"),
        ("teleport", 1, UnknownFeature, "unknown_feature"),
        ("sso", 1, InvalidUsage, "not_metered"),
    ],
)
def test_record_event_bad_input_raises_coded_error_and_writes_nothing(
    app: Flask, feature: str, units: int, error: type[Exception], code: str
) -> None:
    customer_id = new_customer(app)
    with pytest.raises(error) as raised:
        record(app, customer_id, "k", feature, units)
    assert getattr(raised.value, "code", None) == code
    assert count(app, UsageEvent) == 0


def test_record_batch_retried_whole_returns_same_results_once(synced: Flask) -> None:
    customer_id = new_subscriber(synced, "pro_monthly").id
    reference = reference_of(synced, customer_id)
    events = [
        UsageEventInput(reference, "b1", "chat", "ai_chat", 100),
        UsageEventInput("nobody", "b2", "chat", "ai_chat", 100),
        UsageEventInput(reference, "b3", "chat", "teleport", 100),
        UsageEventInput(reference, "b4", "calls", "api_calls", 7),
    ]
    outcomes = []
    for _ in range(2):
        with synced.app_context():
            outcomes.append(record_batch(customer_by_reference, events, db.session.commit))
            db.session.commit()
    first, retry = outcomes
    assert [type(outcome).__name__ for outcome in first] == [
        "UsageResult",
        "UnknownCustomer",
        "UnknownFeature",
        "UsageResult",
    ]
    assert isinstance(retry[1], UnknownCustomer)
    assert (retry[0], retry[3]) == (first[0], first[3])
    assert count(synced, UsageEvent) == 2
    assert balance(synced, customer_id) == 1_000_000 - 100
