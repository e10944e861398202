"""Starting a subscription: its items, its first period and its first invoice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..context import DAY, Ctx
from ..shapes import skeleton
from ..store import new_id
from .items import billing_interval, build_item
from .lifecycle import create_invoice, finalize_and_pay
from .periods import cycle_line, next_period_end


def start_subscription(
    ctx: Ctx,
    customer: dict[str, Any],
    items: list[dict[str, Any]],
    *,
    trial_days: int | None = None,
    options: dict[str, Any] | None = None,
    on_created: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Create a subscription and its first invoice (a $0 one for a trial), paying it at once;
    `on_created` runs before any event about the subscription (Checkout completes first)."""
    options = options or {}
    now = ctx.now(customer["test_clock"])
    trial_end = options.get("trial_end") or (now + trial_days * DAY if trial_days else None)
    sub, lines, period = new_subscription(ctx, customer, items, now, trial_end, options)
    ctx.save(sub)
    if on_created is not None:
        on_created(sub)
    ctx.emit("customer.subscription.created", sub)
    invoice = create_invoice(ctx, sub, "subscription_create", lines, period)
    # payment_behavior (API reference, create subscription): allow_incomplete (default) tries
    # the charge and leaves the subscription incomplete if it fails; default_incomplete waits
    # for the payment to be confirmed; error_if_incomplete answers 402 and creates nothing.
    payment = options.get("payment_behavior", "allow_incomplete")
    attempt = payment != "default_incomplete" or not invoice["amount_due"]
    decline = finalize_and_pay(ctx, invoice, attempt=attempt)
    if decline is not None and payment == "error_if_incomplete":
        raise decline
    return ctx.fetch("subscription", sub["id"])


def new_subscription(
    ctx: Ctx,
    customer: dict[str, Any],
    items: list[dict[str, Any]],
    now: int,
    trial_end: int | None,
    options: dict[str, Any],
) -> tuple[dict[str, Any], list[dict[str, Any]], tuple[int, int]]:
    """A subscription starting at `now` (not yet saved), its first invoice's lines and their
    period."""
    sub = skeleton("subscription", new_id("sub", 24), now)
    sub.update(
        automatic_tax={"enabled": False, "liability": None, "disabled_reason": None},
        billing_cycle_anchor=trial_end or now,
        billing_mode={"type": "classic"},
        cancel_at_period_end=False,
        collection_method="charge_automatically",
        cancellation_details={"comment": None, "feedback": None, "reason": None},
        customer=customer["id"],
        default_tax_rates=[],
        discounts=[],
        invoice_settings={"account_tax_ids": None, "issuer": {"type": "self"}},
        managed_payments=None,
        billing_schedules=[],
        payment_settings={
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        start_date=now,
        test_clock=customer["test_clock"],
        trial_start=trial_end and now,
        trial_end=trial_end,
        default_payment_method=options.get("default_payment_method"),
        description=options.get("description"),
        metadata=options.get("metadata", {}),
        trial_settings={
            "end_behavior": {
                "missing_payment_method": options.get("trial_settings", {})
                .get("end_behavior", {})
                .get("missing_payment_method", "create_invoice")
            }
        },
    )
    built = [
        build_item(ctx, sub, i["price"], i.get("quantity"), f"items[{n}][price]")
        for n, i in enumerate(items)
    ]
    billing_interval(built)
    end = trial_end or next_period_end(now, built[0]["price"]["recurring"], now)
    for item in built:
        item.update(current_period_start=now, current_period_end=end)
    lines = [cycle_line(ctx, i, (now, end), customer["id"], trial=bool(trial_end)) for i in built]
    amount_due = sum(line["amount"] for line in lines)
    sub.update(
        currency=built[0]["price"]["currency"],
        items={
            "object": "list",
            "data": built,
            "has_more": False,
            "url": f"/v1/subscription_items?subscription={sub['id']}",
        },
        status="trialing" if trial_end else "incomplete" if amount_due else "active",
    )
    return sub, lines, (now, end)
