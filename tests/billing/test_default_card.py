"""The mirror keeps what the back office's risk page needs from Stripe: the card renewals are
charged to (never its number), and how far Stripe's retries of an unpaid invoice have got."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
from flask import Flask
from sqlalchemy import select

from app.accounts.mirror import Invoice
from app.accounts.models import Customer
from app.billing.gateway import gateway
from app.extensions import db
from app.stripe_sandbox import Sandbox
from app.stripe_sandbox.resources.payments import attach_card
from tests.factories import past_due_customer
from tests.journeys import subscribe
from tests.web import WebClient


def card_of(app: Flask, email: str) -> tuple[str | None, str | None, date | None]:
    with app.app_context():
        customer = db.session.scalars(select(Customer).where(Customer.email == email)).one()
        return customer.card_brand, customer.card_last4, customer.card_expires_on


def test_checkout_mirrors_the_subscriptions_card_to_the_last_day_of_its_month(
    synced: Flask, client: WebClient, sandbox: Sandbox
) -> None:
    subscribe(client, "buyer@example.com", "pro_monthly")  # pays with 4242..., "12 / 34"
    assert card_of(synced, "buyer@example.com") == ("visa", "4242", date(2034, 12, 31))
    sandbox.deliver_pending()
    assert card_of(synced, "buyer@example.com") == ("visa", "4242", date(2034, 12, 31))


def test_a_new_default_card_on_the_customer_is_mirrored_from_customer_updated(
    synced: Flask, sandbox: Sandbox, api: httpx.Client
) -> None:
    api.post("/customers", json={"customerReferenceId": "c-1", "email": "c1@example.com"})
    with synced.app_context():
        stripe_customer_id = db.session.scalars(select(Customer.stripe_customer_id)).one()
    assert stripe_customer_id is not None
    sandbox.deliver_pending()
    assert card_of(synced, "c1@example.com") == (None, None, None)

    method = sandbox.run(
        lambda ctx: attach_card(
            ctx, ctx.fetch("customer", stripe_customer_id), "4242 4242 4242 4242", "02 / 28"
        )
    )
    with synced.app_context():
        gateway().client.v1.customers.update(
            stripe_customer_id, {"invoice_settings": {"default_payment_method": method["id"]}}
        )
    sandbox.deliver_pending()
    # Good through the last day of February 2028, a leap year.
    assert card_of(synced, "c1@example.com") == ("visa", "4242", date(2028, 2, 29))


def test_a_declined_renewal_mirrors_its_attempts_and_stripes_next_retry(synced: Flask) -> None:
    past_due_customer(synced, "pro_monthly", email="late@example.com")
    with synced.app_context():
        unpaid = db.session.scalars(select(Invoice).where(Invoice.status == "open")).one()
        assert unpaid.attempt_count == 1
        assert unpaid.next_payment_attempt is not None
        # The sandbox's schedule, like Stripe's recommended one: the first retry 3 days after
        # the first failure, which was an hour after the invoice was made (finalization).
        assert unpaid.next_payment_attempt - unpaid.created == timedelta(days=3, hours=1)
    assert card_of(synced, "late@example.com")[1] == "0341"
