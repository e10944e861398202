"""`flask sandbox fill`: a Stripe account Tollgate did not make, read back through the SDK."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import stripe
from flask import Flask

from app.stripe_sandbox import Sandbox, create_blueprint
from app.stripe_sandbox.fill import FillOptions, FillSummary, fill

from .test_shapes import FIXTURES, shape_problems

OPTIONS = FillOptions(customers=150, invoices=4, seed=11)
# The services the SDK lists each filled object type with.
LISTED = {
    "product": "products",
    "price": "prices",
    "customer": "customers",
    "subscription": "subscriptions",
    "subscription_schedule": "subscription_schedules",
    "invoice": "invoices",
    "invoice_payment": "invoice_payments",
    "payment_intent": "payment_intents",
    "charge": "charges",
    "refund": "refunds",
    "dispute": "disputes",
}


def listed(client: stripe.StripeClient, object_type: str) -> list[stripe.StripeObject]:
    """Every object of a type, newest first, as the API lists them."""
    service = getattr(client.v1, LISTED[object_type])
    params: dict[str, Any] = {"limit": 100}
    if object_type == "subscription":
        params["status"] = "all"
    return list(service.list(params=params).auto_paging_iter())


@pytest.fixture
def filled(sandbox: Sandbox) -> FillSummary:
    return fill(sandbox, OPTIONS)


def test_same_seed_same_counts_and_statuses(tmp_path: Path) -> None:
    first, second = (
        fill(Sandbox(str(tmp_path / f"{name}.sqlite3")), OPTIONS) for name in ("a", "b")
    )
    assert (first.objects, first.subscriptions) == (second.objects, second.subscriptions)
    other = fill(Sandbox(str(tmp_path / "c.sqlite3")), FillOptions(150, 4, seed=12))
    assert other.subscriptions != first.subscriptions


def test_summary_counts_what_the_api_lists(
    client: stripe.StripeClient, filled: FillSummary
) -> None:
    assert filled.objects["customer"] == filled.objects["subscription"] == 150
    assert sum(filled.subscriptions.values()) == 150
    assert set(filled.subscriptions) == {"active", "trialing", "past_due", "unpaid", "canceled"}
    for object_type in LISTED:
        assert len(listed(client, object_type)) == filled.objects[object_type], object_type
    statuses = Counter(s.status for s in listed(client, "subscription"))
    assert statuses == filled.subscriptions


def test_every_filled_object_has_stripes_shape(
    client: stripe.StripeClient, filled: FillSummary
) -> None:
    if not FIXTURES.exists():
        pytest.skip(f"Stripe's sample objects are not at {FIXTURES} (outside the repo)")
    samples = json.loads(FIXTURES.read_text())["resources"]
    objects = [o.to_dict() for kind in LISTED for o in listed(client, kind)]
    objects += [
        client.v1.payment_methods.retrieve(str(charge["payment_method"])).to_dict()
        for charge in objects
        if charge["object"] == "charge"
    ]
    found = [p for obj in objects for p in shape_problems(obj, samples)]
    assert found == []


def test_history_is_in_the_past_and_listed_newest_first(
    client: stripe.StripeClient, sandbox: Sandbox, filled: FillSummary
) -> None:
    now = sandbox.now()
    for object_type in LISTED:
        created = [o.created for o in listed(client, object_type)]
        assert created == sorted(created, reverse=True), object_type
        assert max(created) < now, object_type


def test_each_subscription_has_the_invoices_its_status_tells(
    client: stripe.StripeClient, sandbox: Sandbox, filled: FillSummary
) -> None:
    now = sandbox.now()
    invoices_of: dict[str, list[stripe.Invoice]] = {}
    for invoice in client.v1.invoices.list(
        params={"limit": 100, "expand": ["data.payments"]}
    ).auto_paging_iter():
        invoices_of.setdefault(invoice.parent.subscription_details.subscription, []).append(invoice)
    charges_of: dict[str, list[stripe.Charge]] = {}
    for charge in listed(client, "charge"):
        charges_of.setdefault(str(charge.payment_intent), []).append(charge)
    for sub in listed(client, "subscription"):
        invoices = invoices_of[sub.id]
        assert sub.latest_invoice == invoices[0].id
        item = sub["items"].data[0]
        assert item.current_period_start < now
        if sub.status == "trialing":
            assert (len(invoices), invoices[0].amount_paid, sub.trial_end > now) == (1, 0, True)
            continue
        assert len(invoices) in (OPTIONS.invoices, 1)  # a yearly subscription has one
        *past, last = invoices[::-1]
        assert all(invoice.status == "paid" for invoice in past)
        for invoice in invoices:
            [payment] = invoice.payments.data
            charges = charges_of[str(payment.payment.payment_intent)]
            assert charges[0].status == ("succeeded" if invoice.status == "paid" else "failed")
        if sub.status in ("active", "canceled"):
            assert last.status == "paid"
        if sub.status == "past_due":
            assert (last.status, last.next_payment_attempt > now) == ("open", True)
        if sub.status == "unpaid":
            assert (last.status, last.attempt_count, last.next_payment_attempt) == ("open", 4, None)
        if sub.status == "canceled":
            assert (sub.cancel_at_period_end, sub.ended_at) == (True, item.current_period_end)
        else:
            assert item.current_period_end > now


def test_schedules_refunds_and_disputes_are_consistent(
    client: stripe.StripeClient, sandbox: Sandbox, filled: FillSummary
) -> None:
    for schedule in listed(client, "subscription_schedule"):
        sub = client.v1.subscriptions.retrieve(str(schedule.subscription))
        current, following = schedule.phases
        assert (sub.schedule, following.start_date) == (schedule.id, current.end_date)
        assert current.items[0].price != following.items[0].price
    for refund in listed(client, "refund"):
        charge = client.v1.charges.retrieve(str(refund.charge))
        assert charge.amount_refunded == sum(r.amount for r in charge.refunds.data)
    assert listed(client, "dispute")
    for dispute in listed(client, "dispute"):
        assert client.v1.charges.retrieve(str(dispute.charge)).disputed
        if dispute.status == "needs_response":
            assert dispute.evidence_details.due_by > sandbox.now()
        else:
            assert dispute.status in ("won", "lost")


def test_fill_sends_no_webhook_and_leaves_nothing_due(
    client: stripe.StripeClient, sandbox: Sandbox
) -> None:
    client.v1.webhook_endpoints.create(
        params={"url": "http://app.test/hook", "enabled_events": ["*"]}
    )
    fill(sandbox, OPTIONS)
    sandbox.advance(0)
    assert client.v1.events.list().data == []
    assert sandbox.pending_deliveries() == []


def test_fill_puts_part_of_the_account_on_the_synced_prices_and_maps_the_rest(
    client: stripe.StripeClient, sandbox: Sandbox
) -> None:
    synced = {
        key: client.v1.prices.create(
            params={
                "currency": "usd",
                "unit_amount": amount,
                "recurring": {"interval": interval},
                "product_data": {"name": "Pro"},
                "lookup_key": key,
            }
        ).id
        for key, amount, interval in (("pro_monthly", 4900, "month"), ("pro_yearly", 49000, "year"))
    }
    summary = fill(sandbox, OPTIONS)
    assert sorted(summary.legacy_prices.values()) == ["pro_monthly", "pro_monthly", "pro_yearly"]
    for price_id, plan in summary.legacy_prices.items():
        price = client.v1.prices.retrieve(price_id)
        assert price.lookup_key in (None, f"{plan}_grandfathered")
        assert (
            price.recurring.interval
            == client.v1.prices.retrieve(synced[str(plan)]).recurring.interval
        )
    prices = Counter(s["items"].data[0].price.id for s in listed(client, "subscription"))
    assert prices[synced["pro_monthly"]] > 0
    assert set(prices) <= set(summary.legacy_prices) | set(synced.values())


def test_cli_fill_prints_what_it_made(sandbox: Sandbox) -> None:
    app = Flask(__name__)
    app.extensions["stripe_sandbox"] = sandbox
    app.register_blueprint(create_blueprint(sandbox))
    args = ["sandbox", "fill", "--customers", "20", "--invoices", "2", "--seed", "4"]
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 0, result.output
    assert "Filled the sandbox in" in result.output
    assert "customer                        20" in result.output
    assert "Legacy prices" in result.output
