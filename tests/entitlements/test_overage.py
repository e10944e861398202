"""Billable overage: the outbox, `flask usage forward`, Stripe's invoice, and retries."""

from __future__ import annotations

import json
from typing import Any

import pytest
import stripe
from flask import Flask

from app.accounts.models import Customer
from app.billing.gateway import gateway
from app.billing.overage_forwarding import forward_overage
from app.entitlements.models import OverageBatch
from app.extensions import db
from app.stripe_sandbox import Sandbox
from tests.entitlements.helpers import DAY, record
from tests.factories import new_subscriber

# enterprise_monthly: 10,000,000 tokens a period, then 1 cent per 1,000 tokens.
OVERAGE = 500_000
OVERAGE_CENTS = 500


def meter_events(sandbox: Sandbox, event_name: str) -> list[dict[str, Any]]:
    """The meter events of one meter that Stripe received."""
    events = sandbox.store.all("billing.meter_event")
    return [event for event in events if event["event_name"] == event_name]


def renewal_a_month_on(synced: Flask, sandbox: Sandbox, customer_id: int) -> stripe.Invoice:
    """The renewal invoice Stripe makes when the clock passes the end of the first period."""
    sandbox.advance(31 * DAY)
    sandbox.deliver_pending()
    with synced.app_context():
        stripe_customer = db.session.get_one(Customer, customer_id).stripe_customer_id
        invoices = gateway().client.v1.invoices.list({"customer": stripe_customer or ""}).data
    return next(inv for inv in invoices if inv.billing_reason == "subscription_cycle")


def test_usage_forward_bills_overage_on_the_renewal_invoice(
    synced: Flask, sandbox: Sandbox
) -> None:
    customer_id = new_subscriber(synced, "enterprise_monthly").id
    record(synced, customer_id, "big", "ai_chat", 10_000_000 + OVERAGE)

    result = synced.test_cli_runner().invoke(args=["usage", "forward"])
    assert result.exit_code == 0, result.output
    assert f"sent {OVERAGE:,} tollgate_ai_chat" in result.output
    # The overage, and the plan's fee for its first period (in arrears, like overage).
    assert "sent 1 tollgate_plan_fee" in result.output
    assert "2 sent, 0 failed." in result.output
    again = synced.test_cli_runner().invoke(args=["usage", "forward"])
    assert "0 sent, 0 failed." in again.output

    renewal = renewal_a_month_on(synced, sandbox, customer_id)
    amounts = [line.amount for line in renewal.lines.data]
    assert OVERAGE_CENTS in amounts
    assert renewal.amount_due == sum(amounts)


def test_forward_overage_failed_midway_resends_same_batch_counted_once(
    synced: Flask, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer_id = new_subscriber(synced, "enterprise_monthly").id
    record(synced, customer_id, "big", "ai_chat", 10_000_000 + OVERAGE)
    handle = sandbox.handle

    def accept_then_fail(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        # Stripe stored the event but the answer never arrived: the worker must resend it.
        answer = handle(method, path, *args, **kwargs)
        if path == "/v1/billing/meter_events":
            error = {"error": {"type": "api_error", "message": "Something went wrong."}}
            return 500, {"Content-Type": "application/json"}, json.dumps(error).encode()
        return answer

    monkeypatch.setattr(sandbox, "handle", accept_then_fail)
    with synced.app_context():
        failed = forward_overage()
    # The overage and the plan's fee: both reached Stripe, neither answer came back.
    assert (len(failed.sent), len(failed.failed)) == (0, 2)

    monkeypatch.setattr(sandbox, "handle", handle)
    with synced.app_context():
        retried = forward_overage()
        batch = db.session.scalars(
            db.select(OverageBatch).where(OverageBatch.event_name == "tollgate_ai_chat")
        ).one()
        assert (batch.attempts, batch.forwarded_at is not None) == (2, True)
    assert [sent.identifier for sent in retried.sent] == [
        batch.identifier for batch, _ in failed.failed
    ]
    received = meter_events(sandbox, "tollgate_ai_chat")
    assert len(received) == 2
    # Stripe counts an identifier once: the resent event is not billed again.
    assert sum(int(e["payload"]["value"]) for e in received if not e["_duplicate"]) == OVERAGE


def test_in_arrears_fee_is_billed_once_however_often_its_period_is_synced(
    synced: Flask, sandbox: Sandbox
) -> None:
    customer_id = new_subscriber(synced, "enterprise_monthly").id
    # Every webhook of the new subscription syncs it again, some of them twice: none of them
    # sends the fee (Stripe is never written to from a webhook); the worker's forwarder does,
    # once, however often it runs.
    sandbox.deliver_pending(duplicate=True)
    assert meter_events(sandbox, "tollgate_plan_fee") == []
    for _ in range(3):
        with synced.app_context():
            forward_overage()
    assert len(meter_events(sandbox, "tollgate_plan_fee")) == 1

    renewal = renewal_a_month_on(synced, sandbox, customer_id)
    assert [line.amount for line in renewal.lines.data].count(49_900) == 1
