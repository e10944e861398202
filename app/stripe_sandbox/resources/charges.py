"""Charges: each attempt to pay an invoice's PaymentIntent with a card, paid or declined."""

from __future__ import annotations

from typing import Any

import stripe.params as sp

from ..context import Ctx
from ..errors import StripeError
from ..listing import list_object
from ..router import Route
from ..shapes import blank, skeleton
from ..store import new_id
from .common import ADDRESS_FIELDS, lister, retrieve
from .intents import open_payment, payment_of, record_failure, record_success
from .payments import decline_of

# What Stripe tells the merchant about an issuer's answer (a charge's `outcome`).
_APPROVED = {
    "network_status": "approved_by_network",
    "seller_message": "Payment complete.",
    "type": "authorized",
}
_SELLER_MESSAGES = {
    "generic_decline": "The bank did not return any further details with this decline."
}


def charge_object(
    intent: dict[str, Any],
    method: dict[str, Any],
    customer: dict[str, Any],
    charge_id: str,
    now: int,
    decline: StripeError | None,
) -> dict[str, Any]:
    """A card charge of the PaymentIntent's amount: succeeded, or failed with the decline."""
    paid = decline is None
    amount = intent["amount"]
    card = method["card"]
    details = blank("charge.payment_method_details.card")
    details.update(
        amount_authorized=amount if paid else None,
        brand=card["brand"],
        checks=card["checks"],
        country=card["country"],
        exp_month=card["exp_month"],
        exp_year=card["exp_year"],
        fingerprint=card["fingerprint"],
        funding=card["funding"],
        last4=card["last4"],
        network=card["brand"],
        overcapture={"maximum_amount_capturable": amount, "status": "unavailable"},
    )
    charge = skeleton("charge", charge_id, now)
    charge.update(
        amount=amount,
        amount_captured=amount if paid else 0,
        billing_details=_billing_details(method, customer),
        captured=paid,
        currency=intent["currency"],
        customer=intent["customer"],
        description=intent["description"],
        failure_code=None if decline is None else decline.code,
        failure_message=None if decline is None else decline.message,
        outcome=blank("charge.outcome") | _outcome(decline),
        paid=paid,
        payment_intent=intent["id"],
        payment_method=method["id"],
        payment_method_details={"type": "card", "card": details},
        refunds=list_object(f"/v1/charges/{charge_id}/refunds", []),
        status="succeeded" if paid else "failed",
    )
    return charge


def _billing_details(method: dict[str, Any], customer: dict[str, Any]) -> dict[str, Any]:
    # The sandbox's hosted pages collect no billing address with the card: the charge bills
    # the customer's address, as a Checkout that collects it would have.
    address = customer["address"] or {}
    if not any(address.values()):
        address = method["billing_details"]["address"] or dict.fromkeys(ADDRESS_FIELDS)
    return {**method["billing_details"], "address": dict(address)}


def _outcome(decline: StripeError | None) -> dict[str, Any]:
    if decline is None:
        return _APPROVED
    code = str(decline.decline_code)
    return {
        "network_status": "declined_by_network",
        "reason": code,
        "seller_message": _SELLER_MESSAGES.get(
            code, f"The bank returned the decline code `{code}`."
        ),
        "type": "issuer_declined",
    }


def collect(ctx: Ctx, invoice: dict[str, Any], method_id: str | None) -> StripeError | None:
    """Charge an open invoice's PaymentIntent with the card: None once paid, else why not."""
    if invoice["amount_due"] == 0:
        return None
    method = ctx.store.get(method_id) if method_id else None
    if method is None:
        return StripeError(
            "The customer has no attached payment source or default payment method.",
            code="resource_missing",
            param="payment_method",
        )
    # An invoice finalized before the sandbox made PaymentIntents gets its own now.
    intent, payment = payment_of(ctx, invoice) or open_payment(ctx, invoice)
    customer = ctx.fetch("customer", invoice["customer"])
    now = ctx.now(invoice["test_clock"])
    decline = decline_of(method)
    charge = ctx.save(charge_object(intent, method, customer, new_id("ch", 24), now, decline))
    if decline is not None:
        record_failure(intent, charge, decline)
        ctx.save(intent)
        ctx.emit("charge.failed", charge)
        ctx.emit("payment_intent.payment_failed", intent)
        return decline
    record_success(intent, payment, charge, now)
    ctx.save(intent)
    ctx.save(payment)
    ctx.emit("charge.succeeded", charge)
    ctx.emit("payment_intent.succeeded", intent)
    ctx.emit("invoice_payment.paid", payment)
    return None


ROUTES = [
    Route(
        "GET",
        "/v1/charges",
        sp.ChargeListParams,
        lister("charge", "/v1/charges", "customer", "payment_intent", "transfer_group"),
    ),
    Route("GET", "/v1/charges/{}", sp.ChargeRetrieveParams, retrieve("charge")),
]
