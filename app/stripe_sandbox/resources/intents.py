"""PaymentIntents and invoice payments: how an invoice collects what it is owed.

Since API 2025-03-31 an invoice names no charge and no PaymentIntent, and neither of them names
the invoice (changelog: "Adds support for multiple (partial) payments on invoices"). Stripe makes
a PaymentIntent when it finalizes an invoice with an amount due, and records it in an
`invoice_payment`; each attempt to pay is a charge of that PaymentIntent. So an invoice reaches
its charges through `payments` (expanded) → `payment.payment_intent` → charges of the
PaymentIntent, and a charge its invoice through `payment_intent` → the invoice payment that
names it. The sandbox makes one payment per invoice, its default.
"""

from __future__ import annotations

import secrets
from typing import Any

import stripe.params as sp

from ..context import Ctx, public
from ..errors import StripeError
from ..listing import Stored, list_object, matching, paginate
from ..router import Route
from ..shapes import skeleton
from ..store import new_id
from .common import lister, retrieve

# Stripe describes an invoice's PaymentIntent by the reason the invoice was made.
_FIRST_INVOICE_DESCRIPTION = "Subscription creation"
_LATER_INVOICE_DESCRIPTION = "Subscription update"


def payment_id(invoice_id: str) -> str:
    """The id of an invoice's payment: derived from the invoice's, so that an invoice (or a
    page of them, expanded) finds its payment without a search."""
    return "inpay_" + invoice_id.removeprefix("in_")


def intent_object(invoice: dict[str, Any], intent_id: str, now: int) -> dict[str, Any]:
    """The PaymentIntent Stripe makes to collect a finalized invoice."""
    intent = skeleton("payment_intent", intent_id, now)
    first = invoice["billing_reason"] == "subscription_create"
    intent.update(
        amount=invoice["amount_due"],
        client_secret=f"{intent_id}_secret_{secrets.token_hex(12)}",
        currency=invoice["currency"],
        customer=invoice["customer"],
        description=_FIRST_INVOICE_DESCRIPTION if first else _LATER_INVOICE_DESCRIPTION,
    )
    return intent


def invoice_payment_object(
    invoice: dict[str, Any], intent: dict[str, Any], now: int
) -> dict[str, Any]:
    """The invoice's payment by its PaymentIntent, open until the PaymentIntent succeeds."""
    payment = skeleton("invoice_payment", payment_id(invoice["id"]), now)
    payment.update(
        amount_requested=invoice["amount_due"],
        currency=invoice["currency"],
        invoice=invoice["id"],
        payment={"type": "payment_intent", "payment_intent": intent["id"]},
    )
    return payment


def record_success(
    intent: dict[str, Any], payment: dict[str, Any], charge: dict[str, Any], now: int
) -> None:
    """A charge paid the PaymentIntent in full, and so the invoice payment."""
    intent.update(
        amount_received=intent["amount"],
        last_payment_error=None,
        latest_charge=charge["id"],
        payment_method=charge["payment_method"],
        status="succeeded",
    )
    payment.update(
        amount_paid=payment["amount_requested"],
        status="paid",
        status_transitions={**payment["status_transitions"], "paid_at": now},
    )


def record_failure(intent: dict[str, Any], charge: dict[str, Any], decline: StripeError) -> None:
    """A charge was declined: the PaymentIntent waits for another payment method."""
    # A failed attempt detaches the payment method; the error keeps what was tried.
    intent.update(
        last_payment_error={
            "charge": charge["id"],
            "code": decline.code,
            "decline_code": decline.decline_code,
            "message": decline.message,
            "type": decline.type,
        },
        latest_charge=charge["id"],
        payment_method=None,
        status="requires_payment_method",
    )


def open_payment(ctx: Ctx, invoice: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Make the PaymentIntent and invoice payment of a just finalized invoice."""
    now = ctx.now(invoice["test_clock"])
    intent = ctx.save(intent_object(invoice, new_id("pi", 24), now))
    ctx.emit("payment_intent.created", intent)
    return intent, ctx.save(invoice_payment_object(invoice, intent, now))


def payment_of(ctx: Ctx, invoice: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """An invoice's PaymentIntent and payment, if it was finalized with an amount due."""
    payment = ctx.store.get(payment_id(invoice["id"]))
    if payment is None:
        return None
    return ctx.fetch("payment_intent", payment["payment"]["payment_intent"]), payment


def invoice_payments(ctx: Ctx, invoice: dict[str, Any]) -> dict[str, Any]:
    """An invoice's `payments`, which Stripe sends only when asked to expand them."""
    payment = ctx.store.get(payment_id(invoice["id"]))
    found = [public(payment)] if payment is not None else []
    return list_object(f"/v1/invoices/{invoice['id']}/payments", found)


def list_invoice_payments(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    """GET /v1/invoice_payments, by invoice, status, created and payment."""
    by_fields = matching(params, "invoice", "status")
    wanted = params.get("payment", {})

    def keep(payment: dict[str, Any]) -> bool:
        return by_fields(payment) and all(
            payment["payment"].get(key) == value for key, value in wanted.items()
        )

    return paginate(Stored(ctx.store, "invoice_payment"), params, "/v1/invoice_payments", keep)


ROUTES = [
    Route(
        "GET",
        "/v1/payment_intents",
        sp.PaymentIntentListParams,
        lister("payment_intent", "/v1/payment_intents", "customer", "customer_account"),
    ),
    Route(
        "GET", "/v1/payment_intents/{}", sp.PaymentIntentRetrieveParams, retrieve("payment_intent")
    ),
    Route("GET", "/v1/invoice_payments", sp.InvoicePaymentListParams, list_invoice_payments),
    Route(
        "GET",
        "/v1/invoice_payments/{}",
        sp.InvoicePaymentRetrieveParams,
        retrieve("invoice_payment"),
    ),
]
EXPANSIONS = {("invoice", "payments"): invoice_payments}
