"""subscriptions.create without Checkout: free plans, in-arrears plans, payment_behavior."""

from __future__ import annotations

import pytest
import stripe

from app.stripe_sandbox import Sandbox

from .conftest import Catalog, Server, invoices_of, record_usage, recurring_price, set_card

DAY = 86400


def _create(client: stripe.StripeClient, customer: str, *prices: str, **extra: object):
    return client.v1.subscriptions.create(
        params={"customer": customer, "items": [{"price": p} for p in prices], **extra}  # type: ignore[typeddict-item]
    )


def test_free_plan_is_active_at_once_with_a_paid_zero_invoice(
    client: stripe.StripeClient,
) -> None:
    free = recurring_price(client, "Free", 0)
    customer = client.v1.customers.create(params={"email": "free@example.com"})
    sub = _create(
        client, customer.id, free.id, metadata={"user_id": "7"}, expand=["latest_invoice"]
    )
    assert (sub.status, sub.metadata.to_dict()) == ("active", {"user_id": "7"})
    invoice = sub.latest_invoice
    assert (invoice.billing_reason, invoice.status, invoice.amount_due) == (
        "subscription_create",
        "paid",
        0,
    )
    created = client.v1.events.list(params={"type": "customer.subscription.created"}).data
    assert [e.data.object.id for e in created] == [sub.id]


def test_metered_flat_fee_bills_in_arrears_and_duns_without_a_card(
    client: stripe.StripeClient, catalog: Catalog, sandbox: Sandbox
) -> None:
    # A $9 flat fee modeled as a metered price whose meter gets 1 unit per period.
    flat = recurring_price(client, "Base fee", 900, meter=catalog.meter.id)
    customer = client.v1.customers.create(params={"email": "arrears@example.com"})
    sub = _create(client, customer.id, flat.id)
    first = client.v1.invoices.retrieve(sub.latest_invoice)
    assert (sub.status, first.status, first.amount_paid) == ("active", "paid", 0)
    record_usage(client, customer.id, "1", identifier="period-1")
    sandbox.advance(sub["items"].data[0].current_period_end - sandbox.now() + 3600 + 60)
    renewal = invoices_of(client, sub.id)[-1]
    assert (renewal.billing_reason, renewal.amount_due, renewal.status) == (
        "subscription_cycle",
        900,
        "open",
    )
    assert renewal.next_payment_attempt is not None
    assert client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    failed = client.v1.events.list(params={"type": "invoice.payment_failed"}).data
    assert [e.data.object.id for e in failed] == [renewal.id]


def test_metered_flat_fee_is_paid_when_the_customer_has_a_card(
    client: stripe.StripeClient, server: Server, catalog: Catalog, sandbox: Sandbox
) -> None:
    flat = recurring_price(client, "Base fee", 900, meter=catalog.meter.id)
    customer = client.v1.customers.create(params={"email": "card@example.com"})
    set_card(client, server, customer.id, "4242424242424242")
    sub = _create(client, customer.id, flat.id)
    record_usage(client, customer.id, "1")
    sandbox.advance(32 * DAY)
    assert [(i.billing_reason, i.amount_paid) for i in invoices_of(client, sub.id)] == [
        ("subscription_create", 0),
        ("subscription_cycle", 900),
    ]
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_paid_plan_without_a_card_is_incomplete(
    client: stripe.StripeClient, catalog: Catalog
) -> None:
    customer = client.v1.customers.create(params={"email": "nocard@example.com"})
    sub = _create(client, customer.id, catalog.monthly.id)
    assert sub.status == "incomplete"
    assert client.v1.invoices.retrieve(sub.latest_invoice).status == "open"


def test_error_if_incomplete_creates_nothing(client: stripe.StripeClient, catalog: Catalog) -> None:
    customer = client.v1.customers.create(params={"email": "strict@example.com"})
    with pytest.raises(stripe.StripeError):
        _create(client, customer.id, catalog.monthly.id, payment_behavior="error_if_incomplete")
    assert client.v1.subscriptions.list(params={"status": "all"}).data == []
    assert client.v1.invoices.list().data == []


def test_trial_on_direct_create_needs_no_card(
    client: stripe.StripeClient, catalog: Catalog
) -> None:
    customer = client.v1.customers.create(params={"email": "trial@example.com"})
    sub = _create(client, customer.id, catalog.monthly.id, trial_period_days=14)
    assert sub.status == "trialing"
    assert sub.trial_end - sub.trial_start == 14 * DAY
    assert client.v1.invoices.retrieve(sub.latest_invoice).amount_paid == 0


def test_idempotency_key_replays_a_create(client: stripe.StripeClient) -> None:
    free = recurring_price(client, "Free", 0)
    customer = client.v1.customers.create(params={"email": "twice@example.com"})
    params: stripe.params.SubscriptionCreateParams = {
        "customer": customer.id,
        "items": [{"price": free.id}],
    }
    first = client.v1.subscriptions.create(params=params, options={"idempotency_key": "sub-7"})
    again = client.v1.subscriptions.create(params=params, options={"idempotency_key": "sub-7"})
    assert again.id == first.id
    assert len(client.v1.subscriptions.list().data) == 1


def test_items_with_different_intervals_are_refused(
    client: stripe.StripeClient, catalog: Catalog
) -> None:
    yearly = recurring_price(client, "Pro yearly", 15000, interval="year")
    customer = client.v1.customers.create(params={"email": "mixed@example.com"})
    with pytest.raises(stripe.InvalidRequestError, match="interval"):
        _create(client, customer.id, catalog.monthly.id, yearly.id)
