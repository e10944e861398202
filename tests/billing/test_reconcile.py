"""Reconciliation: drift left by webhooks lost for good is found, repaired and recorded, and the
usage forwarded to Stripe Meters is checked against Stripe's own totals."""

from __future__ import annotations

import json
import re

import stripe
from flask import Flask
from sqlalchemy import select

from app.accounts.mirror import Charge, Dispute, Invoice, Refund, Subscription
from app.accounts.models import Customer
from app.billing.models import Difference, ReconciliationRun
from app.extensions import db
from app.stripe_sandbox import Sandbox, SandboxHTTPClient
from app.stripe_sandbox.webhooks import post_over_http
from tests.journeys import DAY, FAILING_CARD, GOOD_CARD, subscribe
from tests.web import WebClient

DISPUTED_CARD = "4000 0000 0000 0259"


def _operator(sandbox: Sandbox) -> stripe.StripeClient:
    """The operator in Stripe's dashboard: changes made there, not through Tollgate."""
    return stripe.StripeClient("sk_test_operator", http_client=SandboxHTTPClient(sandbox))


def _lose_webhooks(sandbox: Sandbox, lost: str = "") -> None:
    """Deliver what is pending, except that events whose type starts with ``lost`` (all of
    them, by default) are acknowledged and never reach Tollgate: lost for good."""

    def post(url: str, body: bytes, headers: dict[str, str]) -> int:
        if json.loads(body)["type"].startswith(lost):
            return 200
        return post_over_http(url, body, headers)

    sandbox.deliver_pending(post)
    assert sandbox.pending_deliveries() == []


def _reconcile(app: Flask, *args: str) -> tuple[ReconciliationRun, str]:
    result = app.test_cli_runner().invoke(args=["stripe", "reconcile", *args])
    assert result.exit_code == 0, result.output
    with app.app_context():
        run = db.session.scalars(
            select(ReconciliationRun).order_by(ReconciliationRun.id.desc())
        ).first()
        assert run is not None
        run.differences  # noqa: B018 - loaded before the session ends
        db.session.expunge_all()
    return run, result.output


def _differences(run: ReconciliationRun) -> set[tuple[str, str, str | None, str | None]]:
    """What the run found and repaired."""
    assert all(difference.repaired_at is not None for difference in run.differences)
    return {(d.object_type, d.field, d.tollgate_value, d.stripe_value) for d in run.differences}


def _one(app: Flask, model: type, **where: object) -> object:
    with app.app_context():
        query = select(model).filter_by(**where)
        found = db.session.scalars(query).one()
        db.session.expunge_all()
        return found


def test_each_kind_of_lost_change_is_repaired_recorded_and_the_next_run_is_clean(
    synced: Flask, client: WebClient, sandbox: Sandbox, api
) -> None:
    for email, card in (
        ("ada@example.com", GOOD_CARD),
        ("bob@example.com", DISPUTED_CARD),
        ("carol@example.com", FAILING_CARD),
    ):
        subscribe(WebClient(base_url=str(client.base_url)), email, "pro_monthly", card)
    api.post("/customers", json={"customerReferenceId": "dave", "email": "dave@example.com"})
    assert api.post("/subscriptions", json={"customerReferenceId": "dave", "planId": "free"})
    _lose_webhooks(sandbox, lost="none")
    # The trials end: Ada and Bob pay, Bob's bank disputes the charge, Carol's card fails.
    # Tollgate never hears of the dispute.
    sandbox.advance(15 * DAY)
    _lose_webhooks(sandbox, lost="charge.dispute")
    assert _one(synced, Subscription, status="past_due")

    operator = _operator(sandbox)
    ada = _one(synced, Customer, email="ada@example.com")
    ada_subscription = _one(synced, Subscription, customer_id=ada.id)
    ada_charge = _one(synced, Charge, customer_id=ada.id)
    carol_invoice = _one(synced, Invoice, status="open")
    dave_subscription = _one(synced, Subscription, plan_key="free")
    stripe_subscription = operator.v1.subscriptions.retrieve(
        ada_subscription.stripe_subscription_id
    )
    starter = operator.v1.prices.list({"lookup_keys": ["starter_monthly"]}).data[0]
    # Changes made in Stripe's dashboard while Tollgate's endpoint was misconfigured.
    operator.v1.customers.update(ada.stripe_customer_id, {"email": "ada@new.example.com"})
    operator.v1.subscriptions.update(
        stripe_subscription.id,
        {
            "items": [{"id": stripe_subscription["items"].data[0].id, "price": starter.id}],
            "proration_behavior": "none",
        },
    )
    operator.v1.refunds.create({"charge": ada_charge.stripe_charge_id, "amount": 1_000})
    operator.v1.invoices.pay(carol_invoice.stripe_invoice_id, {"paid_out_of_band": True})
    operator.v1.subscriptions.cancel(dave_subscription.stripe_subscription_id)
    _lose_webhooks(sandbox)

    run, output = _reconcile(synced)

    assert run.status.value == "repaired"
    found = _differences(run)
    assert ("customers", "email", "ada@example.com", "ada@new.example.com") in found
    assert ("subscriptions", "plan_key", "pro_monthly", "starter_monthly") in found
    assert ("subscriptions", "status", "active", "canceled") in found
    assert ("subscriptions", "status", "past_due", "active") in found
    assert ("invoices", "status", "open", "paid") in found
    assert ("refunds", "created", None, None) in found
    assert ("charges", "amount_refunded", "0", "1000") in found
    assert ("disputes", "created", None, None) in found
    assert "repaired" in output
    assert "Tollgate had ada@example.com, Stripe has ada@new.example.com" in output
    assert _one(synced, Subscription, customer_id=ada.id).plan_key == "starter_monthly"
    assert _one(synced, Refund, stripe_charge_id=ada_charge.stripe_charge_id).amount == 1_000
    assert _one(synced, Dispute).status == "needs_response"
    assert not any(d.recurring for d in run.differences)

    # Changed again, and lost again: the same field drifting twice running is recurring.
    operator.v1.customers.update(ada.stripe_customer_id, {"email": "ada@third.example.com"})
    _lose_webhooks(sandbox)
    again, _ = _reconcile(synced)
    assert _differences(again) == {
        ("customers", "email", "ada@new.example.com", "ada@third.example.com")
    }
    assert [d.recurring for d in again.differences] == [True]

    clean, output = _reconcile(synced)
    assert clean.status.value == "clean"
    assert clean.differences == []
    listed = synced.test_cli_runner().invoke(args=["stripe", "runs"]).output
    assert re.findall(r"UTC  (\w+)", listed) == ["clean", "repaired", "repaired"]


def test_the_weekly_sweep_reads_every_live_subscription(
    synced: Flask, sandbox: Sandbox, api
) -> None:
    api.post("/customers", json={"customerReferenceId": "erin", "email": "erin@example.com"})
    assert api.post("/subscriptions", json={"customerReferenceId": "erin", "planId": "free"})
    sandbox.deliver_pending()

    first, _ = _reconcile(synced)
    second, _ = _reconcile(synced)
    forced, _ = _reconcile(synced, "--full")

    assert (first.full_sweep, second.full_sweep, forced.full_sweep) == (True, False, True)
    assert forced.objects_checked >= 1
    assert forced.status.value == "clean"


def test_usage_stripe_is_missing_is_sent_again_once_and_usage_it_has_beyond_is_reported(
    synced: Flask, sandbox: Sandbox, api, enterprise_customer: str
) -> None:
    """Enterprise bills AI tokens beyond its 10M credits through a meter."""
    for key in ("a", "b"):
        event = {
            "eventIdempotencyKey": f"burst-{key}",
            "eventName": "chat",
            "customerReferenceId": enterprise_customer,
            "featureKey": "ai_chat",
            "usageUnits": 6_000_000,
        }
        assert api.post("/events", json=event).status_code == 201
    runner = synced.test_cli_runner()
    assert runner.invoke(args=["usage", "forward"]).exit_code == 0
    customer = _one(synced, Customer, reference_id=enterprise_customer)
    # Stripe lost the overage's meter event.
    meter_events = sandbox.run(
        lambda ctx: [
            e for e in ctx.store.all("billing.meter_event") if "overage" in e["identifier"]
        ]
    )
    assert len(meter_events) == 1
    sandbox.run(lambda ctx: ctx.store.delete(meter_events[0]["id"]))
    sandbox.advance(2 * DAY)
    sandbox.deliver_pending()

    run, _ = _reconcile(synced)

    assert [_usage(d) for d in run.differences] == [("2000000", "0", True)]
    assert run.status.value == "repaired"
    assert _reconcile(synced)[0].differences == []

    # Something other than Tollgate sends 500 tokens more for that day: reported, kept.
    _operator(sandbox).v1.billing.meter_events.create(
        {
            "event_name": meter_events[0]["event_name"],
            "payload": {"stripe_customer_id": customer.stripe_customer_id, "value": "500"},
            "identifier": "someone-elses-duplicate",
            "timestamp": meter_events[0]["timestamp"],
        }
    )
    excess, output = _reconcile(synced)
    assert [_usage(d) for d in excess.differences] == [("2000000", "2000500", False)]
    assert "(reported)" in output
    again, _ = _reconcile(synced)
    assert [(_usage(d), d.recurring) for d in again.differences] == [
        (("2000000", "2000500", False), True)
    ]


def _usage(difference: Difference) -> tuple[str | None, str | None, bool]:
    assert difference.object_type == "meter_usage"
    return difference.tollgate_value, difference.stripe_value, difference.repaired_at is not None
