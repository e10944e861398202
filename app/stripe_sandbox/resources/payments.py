"""Stripe's test cards as payment methods."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import stripe.params as sp

from ..context import Ctx
from ..errors import StripeError, card_declined
from ..router import Route
from ..shapes import skeleton
from ..store import new_id
from .common import retrieve

# What a card does when charged (docs.stripe.com/testing): 0341 attaches to a customer but
# every charge fails; 9995 is declined for insufficient funds as soon as it is used; 0259
# succeeds, then its payment is disputed as fraudulent.
SUCCEEDS, FAILS_CHARGES, INSUFFICIENT_FUNDS, DISPUTED = (
    "succeeds",
    "fails_charges",
    "insufficient_funds",
    "disputed",
)


@dataclass(frozen=True)
class Card:
    """A test card: how it behaves, and the issuer details Stripe gives it."""

    behaviour: str = SUCCEEDS
    country: str = "US"
    brand: str = "visa"
    funding: str = "credit"


# docs.stripe.com/testing, "Simulate a payment by country": Visa credit cards unless noted.
_VISA_BY_COUNTRY = {
    "4000000320000021": "AR",
    "4000000760000002": "BR",
    "4000001240000000": "CA",
    "4000001520000001": "CL",
    "4000001700000003": "CO",
    "4000001880000005": "CR",
    "4000002180000000": "EC",
    "4000004840008001": "MX",
    "4000005910000000": "PA",
    "4000006000000066": "PY",
    "4000006040000068": "PE",
    "4000008580000003": "UY",
    "4000007840000001": "AE",
    "4000000400000008": "AT",
    "4000000560000004": "BE",
    "4000001000000000": "BG",
    "4000001120000005": "BY",
    "4000001910000009": "HR",
    "4000001960000008": "CY",
    "4000002030000002": "CZ",
    "4000002080000001": "DK",
    "4000002330000009": "EE",
    "4000002460000001": "FI",
    "4000002500000003": "FR",
    "4000002760000016": "DE",
    "4000002920000005": "GI",
    "4000003000000030": "GR",
    "4000003480000005": "HU",
    "4000003720000005": "IE",
    "4000003800000008": "IT",
    "4000004280000005": "LV",
    "4000004380000004": "LI",
    "4000004400000000": "LT",
    "4000004420000006": "LU",
    "4000004700000007": "MT",
    "4000005280000002": "NL",
    "4000005780000007": "NO",
    "4000006160000005": "PL",
    "4000006200000007": "PT",
    "4000006420000001": "RO",
    "4000006820000007": "SA",
    "4000007050000006": "SI",
    "4000007030000001": "SK",
    "4000007240000007": "ES",
    "4000007520000008": "SE",
    "4000007560000009": "CH",
    "4000008260000000": "GB",
    "4000000360000006": "AU",
    "4000001560000002": "CN",
    "4000003440000004": "HK",
    "4000003560000008": "IN",
    "4000003920000003": "JP",
    "4000004580000002": "MY",
    "4000005540000008": "NZ",
    "4000007020000003": "SG",
    "4000001580000008": "TW",
    "4000007640000003": "TH",
}
TEST_CARDS: dict[str, Card] = {
    "4242424242424242": Card(),
    "4000000000000341": Card(FAILS_CHARGES),
    "4000000000009995": Card(INSUFFICIENT_FUNDS),
    "4000000000000259": Card(DISPUTED),
    **{number: Card(country=country) for number, country in _VISA_BY_COUNTRY.items()},
    "5200007840000022": Card(country="AE", brand="mastercard"),
    "4000058260000005": Card(country="GB", funding="debit"),
    "5555558265554449": Card(country="GB", brand="mastercard"),
    "3530111333300000": Card(country="JP", brand="jcb"),
    "4000057640000008": Card(country="TH", funding="debit"),
}


def card_for(number: str) -> Card:
    """The test card with this number, or the error Checkout shows for any other number."""
    card = TEST_CARDS.get(_digits(number))
    if card is None:
        raise StripeError(
            "Your card number is invalid.",
            status=402,
            type="card_error",
            code="invalid_number",
            param="number",
        )
    if card.behaviour == INSUFFICIENT_FUNDS:
        raise card_declined("Your card has insufficient funds.", "insufficient_funds")
    return card


def attach_card(ctx: Ctx, customer: dict[str, Any], number: str, expiry: str) -> dict[str, Any]:
    """Create a card payment method on the customer (raises the card's checkout error)."""
    card = card_for(number)
    month, _, year = expiry.replace(" ", "").partition("/")
    digits = _digits(number)
    method = skeleton("payment_method", new_id("pm", 24), ctx.now(customer["test_clock"]))
    method.update(
        allow_redisplay="unspecified",
        customer=customer["id"],
        type="card",
        billing_details={
            "address": None,
            "email": customer["email"],
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        card={
            "brand": card.brand,
            "display_brand": card.brand,
            "country": card.country,
            "funding": card.funding,
            "last4": digits[-4:],
            "exp_month": int(month or 12),
            "exp_year": 2000 + int(year[-2:] or 30),
            "fingerprint": digits[-8:],
            "checks": {
                "address_line1_check": None,
                "address_postal_code_check": None,
                "cvc_check": "pass",
            },
            "generated_from": None,
            "networks": {"available": [card.brand], "preferred": None},
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
            "regulated_status": None,
        },
        _behaviour=card.behaviour,
    )
    ctx.save(method)
    ctx.emit("payment_method.attached", method)
    return method


def decline_of(method: dict[str, Any]) -> StripeError | None:
    """The issuer's answer to charging a stored card: None when it pays, else the decline."""
    if method["_behaviour"] == FAILS_CHARGES:
        return card_declined("Your card was declined.", "generic_decline")
    return None


def _digits(number: str) -> str:
    return number.replace(" ", "").replace("-", "")


ROUTES = [
    Route(
        "GET", "/v1/payment_methods/{}", sp.PaymentMethodRetrieveParams, retrieve("payment_method")
    ),
]
