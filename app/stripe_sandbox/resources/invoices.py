"""Invoices over the API: list, retrieve, pay, lines, and previews of a change."""

from __future__ import annotations

from typing import Any

import stripe.params as sp

from ..context import Ctx
from ..errors import StripeError, card_declined
from ..listing import matching, paginate
from ..router import Route
from .common import refuse_unsupported, retrieve
from .lifecycle import attempt_payment, create_invoice, finalize_and_pay
from .periods import cycle_line, next_period_end, proration_lines
from .subscriptions import period_end, planned_items


def subscription_of(invoice: dict[str, Any]) -> str | None:
    """The subscription an invoice bills, from `parent.subscription_details` (API 2025-03-31+)."""
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    return details.get("subscription")


def list_invoices(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    """GET /v1/invoices filtered by customer, status and subscription."""
    by_fields = matching(params, "customer", "status")

    def keep(invoice: dict[str, Any]) -> bool:
        wanted = params.get("subscription")
        return by_fields(invoice) and wanted in (None, subscription_of(invoice))

    return paginate(ctx.store.all("invoice"), params, "/v1/invoices", keep)


def list_lines(ctx: Ctx, params: dict[str, Any], invoice_id: str) -> dict[str, Any]:
    """GET /v1/invoices/{id}/lines."""
    invoice = ctx.fetch("invoice", invoice_id)
    return paginate(invoice["lines"]["data"], params, f"/v1/invoices/{invoice_id}/lines")


def pay(ctx: Ctx, params: dict[str, Any], invoice_id: str) -> dict[str, Any]:
    """POST /v1/invoices/{id}/pay: finalize a draft if needed, then charge it now."""
    refuse_unsupported(params, ())
    invoice = ctx.fetch("invoice", invoice_id)
    if invoice["status"] not in ("draft", "open"):
        raise StripeError("Invoice is already paid.", code="invoice_not_open")
    paid = (finalize_and_pay if invoice["status"] == "draft" else attempt_payment)(ctx, invoice)
    if not paid:
        # The failed attempt stays recorded (events, dunning) while the call reports a card error.
        error = card_declined("Your card was declined.", "generic_decline")
        error.keep_changes = True
        raise error
    return ctx.fetch("invoice", invoice_id)


def create_preview(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/invoices/create_preview: what a subscription change or the renewal would bill."""
    refuse_unsupported(params, ("subscription", "subscription_details", "customer"))
    if "subscription" not in params:
        raise StripeError(
            "The Stripe sandbox previews invoices of an existing subscription only.",
            code="parameter_missing",
            param="subscription",
        )
    sub = ctx.fetch("subscription", params["subscription"], "subscription")
    details = params.get("subscription_details", {})
    refuse_unsupported(details, ("items", "proration_date", "proration_behavior"))
    now = ctx.now(sub["test_clock"])
    pairs = planned_items(ctx, sub, details.get("items", []))
    at = details.get("proration_date", now)
    prorations = [line for old, new in pairs for line in proration_lines(ctx, old, new, at)]
    behavior = details.get("proration_behavior", "create_prorations")
    if behavior == "always_invoice" and prorations:
        start = min(line["period"]["start"] for line in prorations)
        return create_invoice(
            ctx, sub, "subscription_update", prorations, (start, period_end(sub)), preview=True
        )
    # Otherwise the preview is the next renewal, carrying any prorations created now.
    replaced = {new["id"]: new for _, new in pairs}
    items = [replaced.get(i["id"], i) for i in sub["items"]["data"]]
    start = period_end(sub)
    end = next_period_end(sub["billing_cycle_anchor"], items[0]["price"]["recurring"], start)
    pending = sub.get("_pending_lines", []) + (prorations if behavior != "none" else [])
    usage_period = (min(i["current_period_start"] for i in items), start)
    lines = pending + [
        cycle_line(ctx, i, (start, end), sub["customer"], usage_period) for i in items
    ]
    return create_invoice(ctx, sub, "subscription_cycle", lines, (start, end), preview=True)


ROUTES = [
    Route("GET", "/v1/invoices", sp.InvoiceListParams, list_invoices),
    Route("POST", "/v1/invoices/create_preview", sp.InvoiceCreatePreviewParams, create_preview),
    Route("GET", "/v1/invoices/{}", sp.InvoiceRetrieveParams, retrieve("invoice")),
    Route("GET", "/v1/invoices/{}/lines", sp.InvoiceLineItemListParams, list_lines),
    Route("POST", "/v1/invoices/{}/pay", sp.InvoicePayParams, pay),
]
