"""Stripe's test cards as payment methods, and charging them."""

from __future__ import annotations

from typing import Any

import stripe.params as sp

from ..context import Ctx
from ..errors import StripeError, card_declined
from ..router import Route
from ..shapes import skeleton
from ..store import new_id
from .common import retrieve

# docs.stripe.com/testing: 4242 always succeeds; 0341 attaches to a customer but every charge
# fails; 9995 is declined for insufficient funds as soon as it is used.
SUCCEEDS, FAILS_CHARGES, INSUFFICIENT_FUNDS = "succeeds", "fails_charges", "insufficient_funds"
TEST_CARDS = {
    "4242424242424242": SUCCEEDS,
    "4000000000000341": FAILS_CHARGES,
    "4000000000009995": INSUFFICIENT_FUNDS,
}


def card_behaviour(number: str) -> str:
    """How a test card behaves, or the error Checkout shows for an unknown number."""
    behaviour = TEST_CARDS.get(number.replace(" ", "").replace("-", ""))
    if behaviour is None:
        raise StripeError(
            "Your card number is invalid.",
            status=402,
            type="card_error",
            code="invalid_number",
            param="number",
        )
    if behaviour == INSUFFICIENT_FUNDS:
        raise card_declined("Your card has insufficient funds.", "insufficient_funds")
    return behaviour


def attach_card(ctx: Ctx, customer: dict[str, Any], number: str, expiry: str) -> dict[str, Any]:
    """Create a card payment method on the customer (raises the card's checkout error)."""
    behaviour = card_behaviour(number)
    month, _, year = expiry.replace(" ", "").partition("/")
    digits = number.replace(" ", "").replace("-", "")
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
            "brand": "visa",
            "display_brand": "visa",
            "country": "US",
            "funding": "credit",
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
            "networks": {"available": ["visa"], "preferred": None},
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
            "regulated_status": None,
        },
        _behaviour=behaviour,
    )
    ctx.save(method)
    ctx.emit("payment_method.attached", method)
    return method


def charge(ctx: Ctx, payment_method_id: str | None, amount: int) -> StripeError | None:
    """Charge a stored card: None on success, else the decline."""
    if amount == 0:
        return None
    method = ctx.store.get(payment_method_id) if payment_method_id else None
    if method is None:
        return StripeError(
            "The customer has no attached payment source or default payment method.",
            code="resource_missing",
            param="payment_method",
        )
    if method["_behaviour"] != SUCCEEDS:
        return card_declined("Your card was declined.", "generic_decline")
    return None


ROUTES = [
    Route(
        "GET", "/v1/payment_methods/{}", sp.PaymentMethodRetrieveParams, retrieve("payment_method")
    ),
]
