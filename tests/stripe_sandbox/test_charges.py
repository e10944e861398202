"""Every invoice payment attempt with an amount makes a charge, reached from the invoice through
its payments and PaymentIntent, and back, as the current API links them."""

from __future__ import annotations

import pytest
import stripe

from app.stripe_sandbox import Sandbox

from .conftest import Catalog, Server, buy, charges_of

DAY = 86400
PAYS = "4242 4242 4242 4242"
FAILS = "4000 0000 0000 0341"


def test_paid_invoice_has_a_succeeded_charge_found_through_its_payment_and_back(
    client: stripe.StripeClient, server: Server, catalog: Catalog
) -> None:
    done = buy(client, server, catalog.monthly.id, PAYS)
    invoice = client.v1.invoices.retrieve(str(done.invoice), params={"expand": ["payments"]})
    [payment] = invoice.payments.data
    assert (payment.status, payment.amount_paid, payment.payment.type) == (
        "paid",
        1500,
        "payment_intent",
    )
    intent = client.v1.payment_intents.retrieve(str(payment.payment.payment_intent))
    [charge] = client.v1.charges.list(params={"payment_intent": intent.id}).data
    assert intent.latest_charge == charge.id
    assert (charge.amount, charge.currency, charge.customer, charge.status) == (
        1500,
        "usd",
        done.customer,
        "succeeded",
    )
    assert (charge.paid, charge.captured, charge.amount_captured) == (True, True, 1500)
    assert (charge.amount_refunded, charge.refunded, charge.disputed) == (0, False, False)
    card = charge.payment_method_details.card
    assert (card.brand, card.country, card.last4, card.funding) == ("visa", "US", "4242", "credit")
    assert (card.exp_month, card.exp_year) == (12, 2034)
    assert (
        charge.payment_method
        == client.v1.customers.retrieve(str(done.customer)).invoice_settings.default_payment_method
    )
    assert charge.created == invoice.status_transitions.paid_at
    # From the charge back to what it paid: the invoice payment naming its PaymentIntent.
    [back] = client.v1.invoice_payments.list(
        params={"payment": {"type": "payment_intent", "payment_intent": charge.payment_intent}}
    ).data
    assert back.invoice == invoice.id


def test_declined_renewal_makes_a_failed_charge_per_attempt_on_one_payment_intent(
    client: stripe.StripeClient, server: Server, catalog: Catalog, sandbox: Sandbox
) -> None:
    customer = str(buy(client, server, catalog.monthly.id, FAILS, trial_days=1).customer)
    sandbox.advance(2 * DAY)
    [first] = charges_of(client, customer)
    assert (first.status, first.paid, first.captured, first.amount_captured) == (
        "failed",
        False,
        False,
        0,
    )
    assert (first.failure_code, first.failure_message) == (
        "card_declined",
        "Your card was declined.",
    )
    assert (first.outcome.type, first.outcome.reason, first.outcome.network_status) == (
        "issuer_declined",
        "generic_decline",
        "declined_by_network",
    )
    sandbox.advance(3 * DAY)
    first, retry = charges_of(client, customer)
    assert (retry.payment_intent, retry.status) == (first.payment_intent, "failed")
    intent = client.v1.payment_intents.retrieve(str(retry.payment_intent))
    assert (intent.status, intent.latest_charge, intent.payment_method) == (
        "requires_payment_method",
        retry.id,
        None,
    )
    assert intent.last_payment_error.decline_code == "generic_decline"
    [payment] = client.v1.invoice_payments.list(params={"status": "open"}).data
    invoice = client.v1.invoices.retrieve(payment.invoice)
    assert (invoice.status, invoice.attempt_count, invoice.customer) == ("open", 2, customer)
    failed = client.v1.events.list(params={"type": "charge.failed"}).data
    assert [e.data.object.id for e in failed] == [retry.id, first.id]


def test_charge_bills_the_customers_address_and_shows_the_cards_country(
    client: stripe.StripeClient, server: Server, catalog: Catalog
) -> None:
    address = {"line1": "1 rue de Rivoli", "city": "Paris", "postal_code": "75001", "country": "FR"}
    customer = client.v1.customers.create(params={"email": "zoe@example.fr", "address": address})
    buy(client, server, catalog.monthly.id, "4000 0027 6000 0016", customer=customer.id)
    [charge] = charges_of(client, customer.id)
    assert charge.billing_details.address.country == "FR"
    assert charge.payment_method_details.card.country == "DE"


def test_charge_of_a_customer_without_address_has_an_empty_one(
    client: stripe.StripeClient, server: Server, catalog: Catalog
) -> None:
    [charge] = charges_of(client, str(buy(client, server, catalog.monthly.id, PAYS).customer))
    assert charge.billing_details.address.to_dict() == dict.fromkeys(
        ("city", "country", "line1", "line2", "postal_code", "state")
    )


def test_invoice_of_nothing_has_no_payment_and_no_charge(
    client: stripe.StripeClient, server: Server, catalog: Catalog
) -> None:
    done = buy(client, server, catalog.monthly.id, PAYS, trial_days=14)
    invoice = client.v1.invoices.retrieve(str(done.invoice), params={"expand": ["payments"]})
    assert (invoice.amount_paid, invoice.payments.data) == (0, [])
    assert charges_of(client, str(done.customer)) == []


def test_charges_list_by_customer_payment_intent_and_created_newest_first(
    client: stripe.StripeClient, server: Server, catalog: Catalog, sandbox: Sandbox
) -> None:
    first = str(buy(client, server, catalog.monthly.id, PAYS).customer)
    sandbox.advance(DAY)
    second = str(buy(client, server, catalog.monthly.id, PAYS).customer)
    listed = client.v1.charges.list().data
    assert [c.customer for c in listed] == [second, first]
    [mine] = client.v1.charges.list(params={"customer": first}).data
    by_intent = client.v1.charges.list(params={"payment_intent": str(mine.payment_intent)})
    assert [c.id for c in by_intent.data] == [mine.id]
    recent = client.v1.charges.list(params={"created": {"gt": mine.created}}).data
    assert [c.customer for c in recent] == [second]


def test_payment_events_come_in_stripes_order(
    client: stripe.StripeClient, server: Server, catalog: Catalog
) -> None:
    buy(client, server, catalog.monthly.id, PAYS)
    types = [e.type for e in client.v1.events.list(params={"limit": 100}).data][::-1]
    paid = types[types.index("invoice.finalized") :]
    assert paid == [
        "invoice.finalized",
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
        "invoice_payment.paid",
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
    ]


def test_an_invoice_paid_out_of_band_is_paid_without_a_charge_and_its_intent_is_canceled(
    client: stripe.StripeClient, server: Server, catalog: Catalog, sandbox: Sandbox
) -> None:
    done = buy(client, server, catalog.monthly.id, FAILS, trial_days=1)
    sandbox.advance(2 * DAY)
    subscription = client.v1.subscriptions.retrieve(str(done.subscription))
    [open_invoice] = client.v1.invoices.list(params={"status": "open"}).data
    assert subscription.status == "past_due"
    charges = len(charges_of(client, str(done.customer)))

    paid = client.v1.invoices.pay(open_invoice.id, {"paid_out_of_band": True})

    assert (paid.status, paid.amount_remaining) == ("paid", 0)
    assert len(charges_of(client, str(done.customer))) == charges
    assert client.v1.subscriptions.retrieve(str(done.subscription)).status == "active"
    [payment] = client.v1.invoices.retrieve(paid.id, {"expand": ["payments"]}).payments.data
    assert payment.status == "canceled"
    intent = client.v1.payment_intents.retrieve(str(payment.payment.payment_intent))
    assert intent.status == "canceled"
    types = [event.type for event in client.v1.events.list({"limit": 5}).data]
    assert "invoice.paid" in types
    assert "invoice.payment_succeeded" not in types
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.invoices.pay(paid.id, {"paid_out_of_band": True})
    assert refused.value.code == "invoice_not_open"
