"""Refunds: money given back on a succeeded charge, in full or in part, at once."""

from __future__ import annotations

from typing import Any

import stripe.params as sp

from ..amounts import money
from ..context import Ctx, public
from ..errors import StripeError, missing_parameter
from ..router import Route
from ..shapes import skeleton
from ..store import new_id
from .common import lister, refuse_unsupported, retrieve


def refund_object(
    charge: dict[str, Any],
    amount: int,
    refund_id: str,
    now: int,
    reason: str | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A refund back to the charge's card; card refunds in test mode succeed at once
    (docs.stripe.com/testing, "Simulate an asynchronous refund" names the cards that don't)."""
    refund = skeleton("refund", refund_id, now)
    refund.update(
        amount=amount,
        charge=charge["id"],
        currency=charge["currency"],
        customer=charge["customer"],
        destination_details={"type": "card", "card": {"type": "refund"}},
        metadata=metadata or {},
        payment_intent=charge["payment_intent"],
        payment_method=charge["payment_method"],
        reason=reason,
        status="succeeded",
    )
    return refund


def record_refund(charge: dict[str, Any], refund: dict[str, Any]) -> None:
    """The charge gives back the refund's amount; it is `refunded` once all of it is."""
    refunded = charge["amount_refunded"] + refund["amount"]
    charge.update(amount_refunded=refunded, refunded=refunded == charge["amount_captured"])
    charge["refunds"]["data"].insert(0, public(refund))


def create(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/refunds of a charge or a PaymentIntent; `amount` defaults to what is left."""
    refuse_unsupported(params, ("charge", "payment_intent", "amount", "reason", "metadata"))
    charge = _refundable_charge(ctx, params)
    left = charge["amount_captured"] - charge["amount_refunded"]
    if left == 0:
        raise StripeError(
            f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded"
        )
    amount = params.get("amount", left)
    if amount < 1:
        raise StripeError(
            "Invalid positive integer", code="parameter_invalid_integer", param="amount"
        )
    if amount > left:
        # Stripe's message for this refusal carries no error code.
        raise StripeError(
            f"Refund amount ({money(amount, charge['currency'])}) is greater than unrefunded "
            f"amount on charge ({money(left, charge['currency'])})",
            param="amount",
        )
    customer = ctx.fetch("customer", charge["customer"])
    now = ctx.now(customer["test_clock"])
    refund = refund_object(
        charge, amount, new_id("re", 24), now, params.get("reason"), params.get("metadata")
    )
    ctx.save(refund)
    record_refund(charge, refund)
    ctx.save(charge)
    ctx.emit("refund.created", refund)
    ctx.emit("charge.refunded", charge)
    return refund


def _refundable_charge(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    if "charge" in params:
        charge = ctx.fetch("charge", params["charge"], "charge")
        if params.get("payment_intent", charge["payment_intent"]) != charge["payment_intent"]:
            raise StripeError(
                f"The charge {charge['id']} is not a charge of {params['payment_intent']}.",
                param="payment_intent",
            )
    elif "payment_intent" in params:
        intent = ctx.fetch("payment_intent", params["payment_intent"], "payment_intent")
        if intent["status"] != "succeeded":
            raise StripeError(
                f"This PaymentIntent ({intent['id']}) does not have a successful charge to refund.",
                param="payment_intent",
            )
        charge = ctx.fetch("charge", intent["latest_charge"])
    else:
        raise missing_parameter("charge")
    if charge["status"] != "succeeded":
        raise StripeError(
            f"Charge {charge['id']} did not succeed, so it has nothing to refund.",
            param="charge",
        )
    dispute = ctx.store.get(charge["_dispute"]) if charge.get("_dispute") else None
    if dispute is not None and dispute["status"] != "won":
        raise StripeError(
            f"Charge {charge['id']} has been charged back; cannot issue a refund.",
            code="charge_disputed",
            param="charge",
        )
    return charge


ROUTES = [
    Route("POST", "/v1/refunds", sp.RefundCreateParams, create),
    Route(
        "GET",
        "/v1/refunds",
        sp.RefundListParams,
        lister("refund", "/v1/refunds", "charge", "payment_intent"),
    ),
    Route("GET", "/v1/refunds/{}", sp.RefundRetrieveParams, retrieve("refund")),
]
