"""Stripe's test cards at Checkout and in the portal: international cards pay and carry their
country and brand (docs.stripe.com/testing, "Simulate a payment by country")."""

from __future__ import annotations

import pytest
import stripe

from app.stripe_sandbox.resources.payments import SUCCEEDS, TEST_CARDS

from .conftest import Catalog, Server, buy, charges_of, checkout_url, pay

# (number, country, brand, funding) as Stripe's testing page lists them.
FROM_THE_DOCS = [
    ("4000000760000002", "BR", "visa", "credit"),
    ("4000001240000000", "CA", "visa", "credit"),
    ("4000004840008001", "MX", "visa", "credit"),
    ("4000000400000008", "AT", "visa", "credit"),
    ("4000000560000004", "BE", "visa", "credit"),
    ("4000002500000003", "FR", "visa", "credit"),
    ("4000002760000016", "DE", "visa", "credit"),
    ("4000008260000000", "GB", "visa", "credit"),
    ("4000058260000005", "GB", "visa", "debit"),
    ("5555558265554449", "GB", "mastercard", "credit"),
    ("5200007840000022", "AE", "mastercard", "credit"),
    ("4000000360000006", "AU", "visa", "credit"),
    ("4000003920000003", "JP", "visa", "credit"),
    ("3530111333300000", "JP", "jcb", "credit"),
    ("4000057640000008", "TH", "visa", "debit"),
]


@pytest.mark.parametrize(("number", "country", "brand", "funding"), FROM_THE_DOCS)
def test_international_card_pays_with_its_country_and_brand(
    number: str,
    country: str,
    brand: str,
    funding: str,
    client: stripe.StripeClient,
    server: Server,
    catalog: Catalog,
) -> None:
    done = buy(client, server, catalog.monthly.id, number)
    [charge] = charges_of(client, str(done.customer))
    assert charge.status == "succeeded"
    card = charge.payment_method_details.card
    assert (card.country, card.brand, card.network, card.funding, card.last4) == (
        country,
        brand,
        brand,
        funding,
        number[-4:],
    )
    method = client.v1.payment_methods.retrieve(str(charge.payment_method)).card
    assert (method.country, method.brand, method.display_brand) == (country, brand, brand)


def test_every_paying_test_card_of_the_table_is_accepted_at_checkout(
    client: stripe.StripeClient, server: Server, catalog: Catalog
) -> None:
    paying = [number for number, card in TEST_CARDS.items() if card.behaviour == SUCCEEDS]
    for number in paying:
        session = checkout_url(client, catalog.monthly.id)
        assert pay(server, session, number).status == 303, number
    countries = {
        c.payment_method_details.card.country
        for c in client.v1.charges.list(params={"limit": 100}).auto_paging_iter()
    }
    assert len(countries) == len({TEST_CARDS[n].country for n in paying}) > 50


def test_a_card_number_stripe_does_not_list_is_refused(
    client: stripe.StripeClient, server: Server, catalog: Catalog
) -> None:
    # 4000 0025 0000 3155 asks for 3D Secure, which the sandbox does not model.
    page = pay(server, checkout_url(client, catalog.monthly.id), "4000 0025 0000 3155")
    assert page.status == 402
    assert "Your card number is invalid." in page.body


def test_portal_takes_an_international_card(
    client: stripe.StripeClient, server: Server, catalog: Catalog
) -> None:
    customer = str(buy(client, server, catalog.monthly.id, "4242 4242 4242 4242").customer)
    portal = client.v1.billing_portal.sessions.create(params={"customer": customer})
    page = server.post_form(portal.url, {"action": "card", "card_number": "4000003920000003"})
    assert page.status == 200
    method = client.v1.customers.retrieve(customer).invoice_settings.default_payment_method
    assert client.v1.payment_methods.retrieve(str(method)).card.country == "JP"
