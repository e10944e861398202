"""The hosted billing portal and the `flask sandbox` commands."""

from __future__ import annotations

import stripe
from flask import Flask

from app.stripe_sandbox import Sandbox, create_blueprint

from .conftest import Catalog, Server, checkout_url, pay


def test_portal_cancels_at_period_end_and_changes_card(
    client: stripe.StripeClient, server: Server, catalog: Catalog
) -> None:
    session = checkout_url(client, catalog.monthly.id)
    pay(server, session, "4242424242424242")
    sub_id = client.v1.checkout.sessions.retrieve(session.id).subscription
    customer = client.v1.subscriptions.retrieve(sub_id).customer
    portal = client.v1.billing_portal.sessions.create(
        params={"customer": customer, "return_url": "http://app.test/account"}
    )
    page = server.get(portal.url)
    assert "Visa ending in 4242" in page.body
    assert 'href="http://app.test/account"' in page.body
    server.post_form(portal.url, {"action": "cancel", "subscription": sub_id})
    assert client.v1.subscriptions.retrieve(sub_id).cancel_at_period_end is True
    declined = server.post_form(portal.url, {"action": "card", "card_number": "4000000000009995"})
    assert "Your card has insufficient funds." in declined.body
    changed = server.post_form(portal.url, {"action": "card", "card_number": "4000000000000341"})
    assert "Visa ending in 0341" in changed.body


def test_cli_advance_and_deliver(sandbox: Sandbox) -> None:
    app = Flask(__name__)
    app.extensions["stripe_sandbox"] = sandbox
    app.register_blueprint(create_blueprint(sandbox))
    before = sandbox.now()
    result = app.test_cli_runner().invoke(args=["sandbox", "advance", "--days", "2"])
    assert result.exit_code == 0
    assert "Sandbox time is now" in result.output
    assert sandbox.now() - before >= 2 * 86400
    result = app.test_cli_runner().invoke(args=["sandbox", "deliver"])
    assert "Delivered 0 webhook(s); 0 still pending." in result.output
