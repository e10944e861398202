"""The hosted Checkout page over real HTTP, with Stripe's test cards."""

from __future__ import annotations

import stripe

from app.stripe_sandbox import Sandbox

from .conftest import Catalog, Server, checkout_url, pay

DAY = 86400


def _event_types(client: stripe.StripeClient) -> list[str]:
    return [e.type for e in client.v1.events.list(params={"limit": 100}).data][::-1]


def test_page_shows_plan_and_trial(client, server: Server, catalog: Catalog) -> None:
    session = checkout_url(client, catalog.monthly.id, trial_days=14)
    page = server.get(session.url)
    assert page.status == 200
    assert "Pro" in page.body
    assert "14 days free" in page.body
    assert "Then $15.00 per month" in page.body
    assert "Start trial" in page.body
    assert 'href="http://app.test/pricing"' in page.body


def test_4242_completes_and_redirects_to_success_url(
    client: stripe.StripeClient, server: Server, catalog: Catalog
) -> None:
    session = checkout_url(client, catalog.monthly.id)
    page = pay(server, session, "4242 4242 4242 4242")
    assert page.status == 303
    assert page.location == f"http://app.test/welcome?session={session.id}"
    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["subscription"]})
    assert (done.status, done.payment_status, done.client_reference_id) == (
        "complete",
        "paid",
        "user-7",
    )
    assert done.subscription.status == "active"
    invoice = client.v1.invoices.retrieve(done.invoice)
    assert (invoice.status, invoice.amount_paid, invoice.billing_reason) == (
        "paid",
        1500,
        "subscription_create",
    )
    assert invoice.parent.subscription_details.subscription == done.subscription.id


def test_trial_checkout_gives_trialing_and_a_zero_invoice_in_stripe_order(
    client: stripe.StripeClient, server: Server, catalog: Catalog
) -> None:
    session = checkout_url(client, catalog.monthly.id, trial_days=14)
    assert pay(server, session, "4242424242424242").status == 303
    sub = client.v1.subscriptions.retrieve(
        client.v1.checkout.sessions.retrieve(session.id).subscription
    )
    assert sub.status == "trialing"
    assert sub.trial_end - sub.trial_start == 14 * DAY
    assert sub["items"].data[0].current_period_end == sub.trial_end
    invoice = client.v1.invoices.retrieve(sub.latest_invoice)
    assert (invoice.amount_due, invoice.status) == (0, "paid")
    types = [
        t
        for t in _event_types(client)
        if t.split(".")[0] in ("checkout", "invoice") or t.startswith("customer.subscription")
    ]
    assert types == [
        "checkout.session.completed",
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]


def test_9995_shows_insufficient_funds_and_session_stays_open(
    client: stripe.StripeClient, server: Server, catalog: Catalog
) -> None:
    session = checkout_url(client, catalog.monthly.id)
    page = pay(server, session, "4000 0000 0000 9995")
    assert page.status == 402
    assert "Your card has insufficient funds." in page.body
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    assert client.v1.subscriptions.list().data == []


def test_0341_without_trial_is_declined_on_the_page(
    client: stripe.StripeClient, server: Server, catalog: Catalog
) -> None:
    session = checkout_url(client, catalog.monthly.id)
    page = pay(server, session, "4000 0000 0000 0341")
    assert "Your card was declined." in page.body
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"


def test_unknown_card_number_is_invalid(client, server: Server, catalog: Catalog) -> None:
    session = checkout_url(client, catalog.monthly.id)
    assert "Your card number is invalid." in pay(server, session, "1234 5678 9012 3456").body


def test_0341_with_trial_fails_at_renewal_then_dunning_cancels(
    client: stripe.StripeClient, server: Server, catalog: Catalog, sandbox: Sandbox
) -> None:
    session = checkout_url(client, catalog.monthly.id, trial_days=7)
    assert pay(server, session, "4000000000000341").status == 303
    sub_id = client.v1.checkout.sessions.retrieve(session.id).subscription
    assert client.v1.subscriptions.retrieve(sub_id).status == "trialing"
    sandbox.advance(7 * DAY + 2 * 3600)  # trial end, then the draft is finalized an hour later
    sub = client.v1.subscriptions.retrieve(sub_id)
    invoice = client.v1.invoices.retrieve(sub.latest_invoice)
    assert sub.status == "past_due"
    assert (invoice.status, invoice.attempt_count, invoice.amount_due) == ("open", 1, 1500)
    assert invoice.next_payment_attempt is not None
    sandbox.advance(8 * DAY)  # retries on days 3, 5 and 7 after the first failure
    assert client.v1.subscriptions.retrieve(sub_id).status == "canceled"
    assert client.v1.invoices.retrieve(invoice.id).attempt_count == 4
    types = _event_types(client)
    assert "customer.subscription.trial_will_end" in types
    assert types.count("invoice.payment_failed") == 4
    assert types[-1] == "customer.subscription.deleted"
