"""Prices in fractions of a cent and transformed quantities, as invoices bill them."""

from __future__ import annotations

from decimal import Decimal

import pytest
import stripe

from app.stripe_sandbox import Sandbox

from .conftest import Catalog, invoices_of, record_usage, recurring_price

DAY = 86400


def test_unit_amount_decimal_is_kept_and_unit_amount_null_below_a_cent(
    client: stripe.StripeClient, catalog: Catalog
) -> None:
    tokens = recurring_price(client, "Tokens", "0.002", meter=catalog.meter.id)
    # The SDK decodes decimal strings; the API sent "0.002" as given.
    assert (tokens.unit_amount, tokens.unit_amount_decimal) == (None, Decimal("0.002"))
    whole = recurring_price(client, "Seat", "1500")
    assert (whole.unit_amount, whole.unit_amount_decimal) == (1500, Decimal(1500))
    with pytest.raises(stripe.InvalidRequestError, match="only specify one"):
        client.v1.prices.create(
            params={
                "currency": "usd",
                "product": whole.product,  # type: ignore[typeddict-item]
                "unit_amount": 1,
                "unit_amount_decimal": "1.5",
                "recurring": {"interval": "month"},
            }
        )


@pytest.mark.parametrize(
    ("unit", "used", "billed"),
    [("0.002", "1234567", 2469), ("0.1", "1005", 101), ("0.1", "1004", 100)],
)
def test_usage_bills_quantity_times_decimal_rounded_to_the_cent(
    client: stripe.StripeClient,
    catalog: Catalog,
    sandbox: Sandbox,
    unit: str,
    used: str,
    billed: int,
) -> None:
    price = recurring_price(client, "Tokens", unit, meter=catalog.meter.id)
    customer = client.v1.customers.create(params={"email": "tokens@example.com"})
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.id}]}
    )
    record_usage(client, customer.id, used)
    preview = client.v1.invoices.create_preview(params={"subscription": sub.id})
    assert preview.amount_due == billed
    sandbox.advance(32 * DAY)
    renewal = invoices_of(client, sub.id)[1]
    assert (renewal.lines.data[0].quantity, renewal.amount_due) == (int(used), billed)


@pytest.mark.parametrize(("rounding", "billed"), [("up", 3 * 500), ("down", 2 * 500)])
def test_transform_quantity_bills_packages(
    client: stripe.StripeClient, catalog: Catalog, rounding: str, billed: int
) -> None:
    price = client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 500,
            "product_data": {"name": "1k calls"},
            "transform_quantity": {"divide_by": 1000, "round": rounding},  # type: ignore[typeddict-item]
            "recurring": {"interval": "month", "usage_type": "metered", "meter": catalog.meter.id},
        }
    )
    assert price.transform_quantity.divide_by == 1000
    customer = client.v1.customers.create(params={"email": "packs@example.com"})
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.id}]}
    )
    record_usage(client, customer.id, "2001")
    assert client.v1.invoices.create_preview(params={"subscription": sub.id}).amount_due == billed
