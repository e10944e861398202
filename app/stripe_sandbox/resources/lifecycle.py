"""The billing state machine: invoices are created, finalized and paid or dunned; subscriptions
move between trialing, active, past_due and canceled with the events Stripe sends."""

from __future__ import annotations

from typing import Any

from ..context import DAY, Ctx, snapshot
from ..errors import StripeError
from ..shapes import skeleton
from ..store import new_id
from .charges import collect
from .common import change
from .disputes import dispute_if_test_card
from .intents import open_payment, payment_of

# Renewal invoices stay draft for an hour before Stripe finalizes and charges them.
FINALIZE_DELAY = 3600
# A custom retry schedule like Stripe's recommended default: retry 3, 5 and 7 days after the
# first failure, then cancel the subscription (Billing > Revenue recovery > Retries).
RETRY_DAYS = (3, 5, 7)
# An update waiting for its invoice to be paid expires after 23 hours (docs: "Pending updates
# reference" > expiration).
PENDING_UPDATE_LIFETIME = 23 * 3600


def create_invoice(
    ctx: Ctx,
    sub: dict[str, Any],
    billing_reason: str,
    lines: list[dict[str, Any]],
    period: tuple[int, int],
    *,
    preview: bool = False,
) -> dict[str, Any]:
    """A draft invoice for a subscription (saved with `invoice.created` unless a preview)."""
    customer = ctx.fetch("customer", sub["customer"])
    invoice_id = "upcoming_" + new_id("in", 24) if preview else new_id("in", 24)
    invoice = invoice_object(
        sub, customer, billing_reason, lines, period, ctx.now(sub["test_clock"]), invoice_id
    )
    if preview:
        invoice.update(auto_advance=False)
        for item in lines:
            item["invoice"] = None
        return invoice
    ctx.save(invoice)
    ctx.emit("invoice.created", invoice)
    # Stripe sends no subscription event for latest_invoice alone.
    sub["latest_invoice"] = invoice["id"]
    ctx.save(sub)
    return invoice


def invoice_object(
    sub: dict[str, Any],
    customer: dict[str, Any],
    billing_reason: str,
    lines: list[dict[str, Any]],
    period: tuple[int, int],
    now: int,
    invoice_id: str,
) -> dict[str, Any]:
    """A subscription's draft invoice of these lines, as Stripe makes it."""
    invoice = skeleton("invoice", invoice_id, now)
    for item in lines:
        item["invoice"] = invoice_id
    total = sum(item["amount"] for item in lines)
    # A negative total (credits beyond charges) is not charged: amount_due stays 0.
    invoice.update(
        account_country="US",
        amount_due=max(total, 0),
        amount_paid=0,
        amount_remaining=max(total, 0),
        amount_overpaid=0,
        amount_shipping=0,
        attempt_count=0,
        attempted=False,
        auto_advance=True,
        billing_reason=billing_reason,
        collection_method="charge_automatically",
        currency=sub["currency"],
        customer=customer["id"],
        customer_email=customer["email"],
        customer_tax_exempt="none",
        customer_tax_ids=[],
        default_tax_rates=[],
        discounts=[],
        automatic_tax={
            "enabled": False,
            "liability": None,
            "status": None,
            "disabled_reason": None,
            "provider": None,
        },
        issuer={"type": "self"},
        payment_settings={
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        lines={
            "object": "list",
            "data": lines,
            "has_more": False,
            "url": f"/v1/invoices/{invoice_id}/lines",
        },
        parent={
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {"metadata": sub["metadata"], "subscription": sub["id"]},
        },
        period_start=period[0],
        period_end=period[1],
        post_payment_credit_notes_amount=0,
        pre_payment_credit_notes_amount=0,
        rendering=None,
        starting_balance=0,
        status="draft",
        status_transitions={
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        subtotal=total,
        subtotal_excluding_tax=total,
        test_clock=sub["test_clock"],
        total=total,
        total_discount_amounts=[],
        total_excluding_tax=total,
        total_pretax_credit_amounts=[],
        total_taxes=[],
    )
    return invoice


def schedule_finalization(ctx: Ctx, invoice: dict[str, Any]) -> None:
    """Leave a renewal invoice draft for an hour, as Stripe does, so it can still be edited."""
    invoice["automatically_finalizes_at"] = invoice["created"] + FINALIZE_DELAY
    ctx.save(invoice)


def finalize_and_pay(
    ctx: Ctx, invoice: dict[str, Any], *, attempt: bool = True
) -> StripeError | None:
    """Finalize a draft (`invoice.finalized`), then attempt payment unless told not to.
    Returns the decline, or None once paid (or left open when not attempted)."""
    now = ctx.now(invoice["test_clock"])
    customer = ctx.fetch("customer", invoice["customer"])
    number = next_number(customer)
    ctx.save(customer)
    change(ctx, invoice, "invoice.finalized", **finalization(invoice, number, now, ctx.base_url))
    if invoice["amount_due"]:
        open_payment(ctx, invoice)
    return attempt_payment(ctx, invoice) if attempt else None


def next_number(customer: dict[str, Any]) -> str:
    """Take the customer's next invoice number: its prefix and sequence, as Stripe numbers."""
    sequence = customer["next_invoice_sequence"]
    customer["next_invoice_sequence"] = sequence + 1
    return f"{customer['invoice_prefix']}-{sequence:04d}"


def finalization(invoice: dict[str, Any], number: str, now: int, base_url: str) -> dict[str, Any]:
    """What finalizing sets on an invoice: it is open, numbered, and has its hosted pages."""
    hosted = f"{base_url}/sandbox/invoices/{invoice['id']}"
    return {
        "status": "open",
        "automatically_finalizes_at": None,
        "number": number,
        "effective_at": now,
        "hosted_invoice_url": hosted,
        "invoice_pdf": f"{hosted}/pdf",
        "status_transitions": {**invoice["status_transitions"], "finalized_at": now},
    }


def attempt_payment(ctx: Ctx, invoice: dict[str, Any]) -> StripeError | None:
    """Charge an open invoice; on failure schedule the next retry or end the subscription.
    Returns the decline, or None once paid."""
    sub = ctx.fetch("subscription", invoice["parent"]["subscription_details"]["subscription"])
    now = ctx.now(invoice["test_clock"])
    customer = ctx.fetch("customer", invoice["customer"])
    method = sub["default_payment_method"] or customer["invoice_settings"]["default_payment_method"]
    decline = collect(ctx, invoice, method)
    if decline is None:
        change(ctx, invoice, "invoice.paid", **paid(invoice, now))
        ctx.emit("invoice.payment_succeeded", invoice)
        if _pending_invoice(sub, invoice):
            _apply_pending_update(ctx, sub)
        elif sub["status"] in ("past_due", "incomplete", "unpaid"):
            change(ctx, sub, "customer.subscription.updated", status="active")
        dispute_if_test_card(ctx, invoice)
        return None
    change(ctx, invoice, "invoice.payment_failed", **failed_attempt(invoice, now))
    if _pending_invoice(sub, invoice):
        pass  # the subscription carries on as if the pending update had not been asked for
    elif invoice["next_payment_attempt"] is None and sub["status"] not in ("incomplete",):
        cancel_subscription(ctx, sub, "payment_failed")
    elif sub["status"] in ("active", "trialing"):
        change(ctx, sub, "customer.subscription.updated", status="past_due")
    return decline


def mark_paid_out_of_band(ctx: Ctx, invoice: dict[str, Any]) -> None:
    """The operator was paid outside Stripe (a bank transfer): the invoice is paid without a
    charge, with `invoice.paid` but no `invoice.payment_succeeded`; its PaymentIntent, which
    will collect nothing now, is canceled with its payment; its subscription is active again."""
    now = ctx.now(invoice["test_clock"])
    found = payment_of(ctx, invoice)
    if found is not None:
        intent, payment = found
        change(ctx, intent, "payment_intent.canceled", status="canceled", canceled_at=now)
        ctx.save({**payment, "status": "canceled"})
    no_attempt = {"attempted": invoice["attempted"], "attempt_count": invoice["attempt_count"]}
    change(ctx, invoice, "invoice.paid", **{**paid(invoice, now), **no_attempt})
    sub = ctx.fetch("subscription", invoice["parent"]["subscription_details"]["subscription"])
    if sub["status"] in ("past_due", "unpaid"):
        change(ctx, sub, "customer.subscription.updated", status="active")


def paid(invoice: dict[str, Any], now: int) -> dict[str, Any]:
    """What paying an open invoice sets on it."""
    attempted = invoice["amount_due"] > 0
    return {
        "status": "paid",
        "attempted": attempted,
        "attempt_count": invoice["attempt_count"] + attempted,
        "amount_paid": invoice["amount_due"],
        "amount_remaining": 0,
        "next_payment_attempt": None,
        "status_transitions": {**invoice["status_transitions"], "paid_at": now},
    }


def failed_attempt(invoice: dict[str, Any], now: int) -> dict[str, Any]:
    """What a declined attempt sets on an invoice: the next retry of the schedule, if any."""
    first_failure = invoice.get("_first_failure_at") or now
    retries_used = invoice["attempt_count"]
    next_attempt = (
        first_failure + RETRY_DAYS[retries_used] * DAY if retries_used < len(RETRY_DAYS) else None
    )
    return {
        "_first_failure_at": first_failure,
        "attempted": True,
        "attempt_count": retries_used + 1,
        "next_payment_attempt": next_attempt,
        "last_finalization_error": None,
    }


def _pending_invoice(sub: dict[str, Any], invoice: dict[str, Any]) -> bool:
    pending = sub.get("_pending_change")
    return bool(pending and pending["invoice"] == invoice["id"])


def _apply_pending_update(ctx: Ctx, sub: dict[str, Any]) -> None:
    # Once the invoice is paid the pending changes apply and pending_update clears.
    before = snapshot(sub)
    pending = sub.pop("_pending_change")
    sub["items"]["data"] = pending["items"]
    sub["billing_cycle_anchor"] = pending["anchor"] or sub["billing_cycle_anchor"]
    sub.update(pending_update=None)
    sub.pop("_pending_lines", None)
    ctx.save(sub)
    ctx.emit("customer.subscription.updated", sub, before)


def expire_pending_update(ctx: Ctx, sub: dict[str, Any]) -> None:
    """Discard a pending update whose invoice was not paid in time."""
    sub.pop("_pending_change", None)
    sub["pending_update"] = None
    ctx.save(sub)
    ctx.emit("customer.subscription.pending_update_expired", sub)


def cancel_subscription(ctx: Ctx, sub: dict[str, Any], reason: str) -> dict[str, Any]:
    """End a subscription now: `customer.subscription.deleted`."""
    now = ctx.now(sub["test_clock"])
    if sub["schedule"]:
        schedule = ctx.fetch("subscription_schedule", sub["schedule"])
        change(ctx, schedule, "subscription_schedule.canceled", status="canceled", canceled_at=now)
    sub.update(
        status="canceled",
        canceled_at=sub["canceled_at"] or now,
        ended_at=now,
        cancellation_details={**sub["cancellation_details"], "reason": reason},
    )
    ctx.save(sub)
    ctx.emit("customer.subscription.deleted", sub)
    return sub
