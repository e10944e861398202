"""Invoices over the API: list, retrieve, pay, lines, and previews of a change."""

from __future__ import annotations

from typing import Any

import stripe.params as sp

from ..context import Ctx
from ..errors import StripeError
from ..listing import Stored, matching, paginate
from ..router import Route
from .changes import period_end, plan_change
from .common import refuse_unsupported, retrieve
from .lifecycle import attempt_payment, create_invoice, finalize_and_pay, mark_paid_out_of_band
from .periods import cycle_line, next_period_end


def subscription_of(invoice: dict[str, Any]) -> str | None:
    """The subscription an invoice bills, from `parent.subscription_details` (API 2025-03-31+)."""
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    return details.get("subscription")


def list_invoices(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    """GET /v1/invoices filtered by customer, status, subscription and the like."""
    by_fields = matching(params, "customer", "status", "collection_method", "due_date")

    def keep(invoice: dict[str, Any]) -> bool:
        wanted = params.get("subscription")
        return by_fields(invoice) and wanted in (None, subscription_of(invoice))

    return paginate(Stored(ctx.store, "invoice"), params, "/v1/invoices", keep)


def list_lines(ctx: Ctx, params: dict[str, Any], invoice_id: str) -> dict[str, Any]:
    """GET /v1/invoices/{id}/lines."""
    invoice = ctx.fetch("invoice", invoice_id)
    return paginate(invoice["lines"]["data"], params, f"/v1/invoices/{invoice_id}/lines")


def pay(ctx: Ctx, params: dict[str, Any], invoice_id: str) -> dict[str, Any]:
    """POST /v1/invoices/{id}/pay: finalize a draft if needed, then charge it now; or, with
    `paid_out_of_band`, mark an open one paid outside Stripe (no charge is made)."""
    refuse_unsupported(params, ("paid_out_of_band",))
    invoice = ctx.fetch("invoice", invoice_id)
    if invoice["status"] not in ("draft", "open"):
        raise StripeError("Invoice is already paid.", code="invoice_not_open")
    if params.get("paid_out_of_band"):
        if invoice["status"] != "open":
            raise StripeError(
                "You can only mark an invoice as paid out of band once it is finalized.",
                code="invoice_not_open",
            )
        mark_paid_out_of_band(ctx, invoice)
        return ctx.fetch("invoice", invoice_id)
    decline = (finalize_and_pay if invoice["status"] == "draft" else attempt_payment)(ctx, invoice)
    if decline is not None:
        # The failed attempt stays recorded (events, dunning) while the call reports the error.
        decline.keep_changes = True
        raise decline
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
    behavior = details.get("proration_behavior", "create_prorations")
    planned = plan_change(
        ctx, sub, details.get("items", []), details.get("proration_date", now), behavior
    )
    if planned.invoice_lines is not None:
        return create_invoice(
            ctx, sub, "subscription_update", planned.invoice_lines, planned.period, preview=True
        )
    # Otherwise the preview is the next renewal, carrying any prorations created now.
    items = planned.items
    start = period_end(sub)
    end = next_period_end(sub["billing_cycle_anchor"], items[0]["price"]["recurring"], start)
    pending = sub.get("_pending_lines", []) + (planned.prorations if behavior != "none" else [])
    since = planned.usage_since
    lines = (
        pending
        + planned.usage
        + [
            cycle_line(
                ctx,
                i,
                (start, end),
                sub["customer"],
                (max(i["current_period_start"], since.get(i["id"], 0)), start),
            )
            for i in items
        ]
    )
    return create_invoice(ctx, sub, "subscription_cycle", lines, (start, end), preview=True)


ROUTES = [
    Route("GET", "/v1/invoices", sp.InvoiceListParams, list_invoices),
    Route("POST", "/v1/invoices/create_preview", sp.InvoiceCreatePreviewParams, create_preview),
    Route("GET", "/v1/invoices/{}", sp.InvoiceRetrieveParams, retrieve("invoice")),
    Route("GET", "/v1/invoices/{}/lines", sp.InvoiceLineItemListParams, list_lines),
    Route("POST", "/v1/invoices/{}/pay", sp.InvoicePayParams, pay),
]
