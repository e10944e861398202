"""The account page's billing portal: sessions on Tollgate's configuration, and what a customer
changes there (address, tax IDs, card) reaching the account page by webhook."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from flask import Flask

from app.stripe_sandbox import Sandbox
from tests.factories import active_customer, log_in
from tests.journeys import click
from tests.web import WebClient, visible_text


def _portal(client: WebClient) -> str:
    opened = click(client, "/account/billing-portal")
    assert opened.status_code == 303, opened.text
    return str(opened.headers["location"])


def _billing_details(client: WebClient) -> str:
    page = client.get("/account").text
    section = page[page.index('id="billing-details"') :]
    return visible_text(section[: section.index("</article>")])


@pytest.fixture
def customer(client: WebClient, synced: Flask) -> WebClient:
    log_in(client, active_customer(synced, "starter_monthly"))
    return client


def test_portal_session_uses_tollgates_configuration_without_cancel_or_plan_changes(
    customer: WebClient, sandbox: Sandbox
) -> None:
    url = _portal(customer)
    session_id = urlsplit(url).path.rsplit("/", 1)[-1]
    configuration = sandbox.run(
        lambda ctx: ctx.fetch(
            "billing_portal.configuration",
            ctx.fetch("billing_portal.session", session_id)["configuration"],
        )
    )
    assert configuration["metadata"] == {"tollgate": "billing_portal"}
    page = visible_text(customer.get(url).text)
    assert "Cancel plan" not in page
    assert "Update plan" not in page
    assert "Add tax ID" in page
    assert "Invoice history" in page
    # A second session, in another process's turn, finds the same configuration.
    assert sandbox.run(lambda ctx: len(ctx.store.all("billing_portal.configuration"))) == 1
    _portal(customer)
    assert sandbox.run(lambda ctx: len(ctx.store.all("billing_portal.configuration"))) == 1


def test_address_and_tax_id_changed_in_the_portal_show_on_the_account_page(
    customer: WebClient, sandbox: Sandbox
) -> None:
    details = _billing_details(customer)
    assert "Visa ending in 4242" in details
    assert "Billing address None given" in details
    url = _portal(customer)
    saved = customer.post(
        url,
        data={
            "action": "details",
            "name": "Ada Lovelace",
            "line1": "Unter den Linden 1",
            "city": "Berlin",
            "postal_code": "10117",
            "country": "DE",
        },
    )
    assert "Your billing information was updated." in saved.text
    added = customer.post(
        url, data={"action": "add_tax_id", "type": "eu_vat", "value": "DE123456789"}
    )
    assert "Your tax ID was added." in added.text
    # Before the webhooks, Tollgate knows nothing of it; after them (shuffled, some twice),
    # the account page shows what the customer entered.
    assert "DE123456789" not in _billing_details(customer)
    sandbox.deliver_pending(shuffle=True, duplicate=True)
    details = _billing_details(customer)
    assert "Unter den Linden 1, 10117 Berlin, DE" in details
    assert "DE123456789 (EU VAT, pending)" in details

    tax_id = sandbox.run(lambda ctx: ctx.store.all("tax_id")[0]["id"])
    customer.post(url, data={"action": "remove_tax_id", "tax_id": tax_id})
    sandbox.deliver_pending()
    assert "Tax IDs None given" in _billing_details(customer)


def test_a_new_card_in_the_portal_shows_on_the_account_page(
    customer: WebClient, sandbox: Sandbox
) -> None:
    url = _portal(customer)
    changed = customer.post(
        url, data={"action": "card", "card_number": "4000 0000 0000 0341", "expiry": "08 / 31"}
    )
    assert "Your payment method was updated." in changed.text
    sandbox.deliver_pending()
    assert "Visa ending in 0341, expires 08/2031" in _billing_details(customer)


def test_opted_in_cancel_shows_in_the_portal(customer: WebClient, synced: Flask) -> None:
    synced.config["TOLLGATE_PORTAL_ALLOWS"] = "cancel"
    result = synced.test_cli_runner().invoke(
        args=["stripe", "setup", "--url", "https://billing.example/stripe/webhook"]
    )
    assert result.exit_code == 0, result.output
    page = visible_text(customer.get(_portal(customer)).text)
    assert "Cancel plan" in page
