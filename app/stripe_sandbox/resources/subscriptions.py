"""Subscriptions over the API: create, update (plan changes, pending updates), cancel, list."""

from __future__ import annotations

from typing import Any

import stripe.params as sp

from ..context import Ctx, snapshot
from ..errors import StripeError
from ..listing import Stored, hide_test_clocks, matching, paginate
from ..router import Route
from .changes import Change, apply_change, period_end, plan_change
from .common import change, refuse_unsupported, retrieve
from .lifecycle import (
    PENDING_UPDATE_LIFETIME,
    cancel_subscription,
    create_invoice,
    finalize_and_pay,
)
from .periods import cycle_line, is_metered, proration_lines
from .start import start_subscription

_CREATE_SUPPORTED = (
    "customer",
    "items",
    "metadata",
    "trial_period_days",
    "trial_end",
    "default_payment_method",
    "description",
    "trial_settings",
    "payment_behavior",
)
_UPDATE_SUPPORTED = (
    "items",
    "proration_behavior",
    "proration_date",
    "cancel_at_period_end",
    "metadata",
    "default_payment_method",
    "description",
    "payment_behavior",
)
_LIST_SUPPORTED = (
    "collection_method",
    "created",
    "customer",
    "customer_account",
    "ending_before",
    "limit",
    "price",
    "starting_after",
    "status",
    "test_clock",
)


def create(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/subscriptions (free and in-arrears plans are started this way)."""
    refuse_unsupported(params, _CREATE_SUPPORTED)
    for name in ("customer", "items"):
        if name not in params:
            raise StripeError(
                f"Missing required param: {name}.", code="parameter_missing", param=name
            )
    _payment_behavior(params, updating=False)
    customer = ctx.fetch("customer", params["customer"], "customer")
    return start_subscription(
        ctx, customer, params["items"], trial_days=params.get("trial_period_days"), options=params
    )


def update(ctx: Ctx, params: dict[str, Any], sub_id: str) -> dict[str, Any]:
    """POST /v1/subscriptions/{id}."""
    refuse_unsupported(params, _UPDATE_SUPPORTED)
    payment = _payment_behavior(params, updating=True)
    sub = ctx.fetch("subscription", sub_id)
    if sub["status"] == "canceled":
        raise StripeError(
            "A canceled subscription can only update its cancellation_details and metadata.",
            param="items" if "items" in params else None,
        )
    before = snapshot(sub)
    now = ctx.now(sub["test_clock"])
    behavior = params.get("proration_behavior", "create_prorations")
    planned = None
    if "items" in params:
        at = params.get("proration_date", now)
        planned = plan_change(ctx, sub, params["items"], at, behavior)
    if planned and planned.invoice_lines is not None and payment == "pending_if_incomplete":
        return _update_once_paid(ctx, sub, planned)
    if planned:
        apply_change(sub, planned, behavior)
    for field in ("metadata", "default_payment_method", "description"):
        if field in params:
            sub[field] = params[field] or None
    if "cancel_at_period_end" in params:
        flag = params["cancel_at_period_end"]
        sub.update(
            cancel_at_period_end=flag,
            cancel_at=period_end(sub) if flag else None,
            canceled_at=now if flag else None,
        )
    ctx.save(sub)
    if sub != before:
        ctx.emit("customer.subscription.updated", sub, before)
    if planned and planned.invoice_lines is not None:
        invoice = create_invoice(
            ctx, sub, "subscription_update", planned.invoice_lines, planned.period
        )
        decline = finalize_and_pay(ctx, invoice)
        if decline is not None and payment == "error_if_incomplete":
            raise decline  # nothing is kept: Stripe answers 402 and leaves the subscription
    return ctx.fetch("subscription", sub_id)


def _update_once_paid(ctx: Ctx, sub: dict[str, Any], planned: Change) -> dict[str, Any]:
    # payment_behavior=pending_if_incomplete: the change applies only once its invoice is
    # paid; until then it waits in `pending_update` (23 h) and the call still answers 200
    # with the subscription (docs: "Pending updates" and its reference).
    lines = planned.invoice_lines or []
    invoice = create_invoice(ctx, sub, "subscription_update", lines, planned.period)
    sub = ctx.fetch("subscription", sub["id"])
    sub["_pending_change"] = {
        "invoice": invoice["id"],
        "items": planned.items,
        "anchor": planned.anchor,
    }
    # Names only the pending update's new items, so it matters once (if ever) they apply.
    sub["_usage_since"] = {**sub.get("_usage_since", {}), **planned.usage_since}
    ctx.save(sub)
    if finalize_and_pay(ctx, invoice) is not None:
        sub = ctx.fetch("subscription", sub["id"])
        change(
            ctx,
            sub,
            "customer.subscription.updated",
            pending_update={
                "billing_cycle_anchor": planned.anchor,
                "expires_at": ctx.now(sub["test_clock"]) + PENDING_UPDATE_LIFETIME,
                "subscription_items": planned.items,
                "trial_end": None,
                "trial_from_plan": None,
                "discounts": [],
                "discount": None,
                "metadata": None,
            },
        )
    return ctx.fetch("subscription", sub["id"])


def _payment_behavior(params: dict[str, Any], *, updating: bool) -> str:
    behavior = str(params.get("payment_behavior", "allow_incomplete"))
    if behavior == "pending_if_incomplete" and not updating:
        raise StripeError(
            "payment_behavior=pending_if_incomplete can only be used to update a subscription.",
            param="payment_behavior",
        )
    if behavior == "default_incomplete" and updating:
        raise StripeError(
            "The Stripe sandbox does not implement payment_behavior=default_incomplete on updates.",
            param="payment_behavior",
        )
    if behavior == "pending_if_incomplete":
        # Pending updates accept only the attributes that prorate or invoice (docs: "Pending
        # updates reference" > supported attributes).
        refuse_unsupported(
            params, ("payment_behavior", "proration_behavior", "proration_date", "items")
        )
    return behavior


def cancel(ctx: Ctx, params: dict[str, Any], sub_id: str) -> dict[str, Any]:
    """DELETE /v1/subscriptions/{id}: cancel at once, optionally with a final invoice."""
    refuse_unsupported(params, ("cancellation_details", "invoice_now", "prorate"))
    sub = ctx.fetch("subscription", sub_id)
    if sub["status"] == "canceled":
        raise StripeError(
            f"No such subscription: '{sub_id}'", status=404, code="resource_missing", param="id"
        )
    if "cancellation_details" in params:
        sub["cancellation_details"].update(params["cancellation_details"])
    if params.get("invoice_now"):
        _final_invoice(ctx, sub, prorate=params.get("prorate", False))
        sub = ctx.fetch("subscription", sub_id) | {
            "cancellation_details": sub["cancellation_details"]
        }
    # prorate alone leaves a pending credit for the customer's next invoice, which the
    # sandbox does not model (it has no customer-level pending invoice items).
    return cancel_subscription(ctx, sub, "cancellation_requested")


def _final_invoice(ctx: Ctx, sub: dict[str, Any], *, prorate: bool) -> None:
    # invoice_now bills un-invoiced metered usage and pending prorations; with prorate it
    # also credits the unused time (API reference: cancel a subscription).
    now = ctx.now(sub["test_clock"])
    lines = list(sub.pop("_pending_lines", []))
    for item in sub["items"]["data"]:
        period = (item["current_period_start"], item["current_period_end"])
        if is_metered(item):
            lines.append(cycle_line(ctx, item, period, sub["customer"], (period[0], now)))
        elif prorate:
            lines += proration_lines(ctx, item, None, now, period)
    start = min(i["current_period_start"] for i in sub["items"]["data"])
    finalize_and_pay(ctx, create_invoice(ctx, sub, "subscription_update", lines, (start, now)))


def list_subscriptions(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    """GET /v1/subscriptions, filtered by status, customer, price, test clock and the like."""
    refuse_unsupported(params, _LIST_SUPPORTED)
    by_fields = matching(params, "customer", "customer_account", "test_clock", "collection_method")
    on_view = hide_test_clocks(params, "customer", "test_clock")
    price = params.get("price")

    def keep(sub: dict[str, Any]) -> bool:
        prices = {i["price"]["id"] for i in sub["items"]["data"]}
        return (
            _has_status(sub["status"], params.get("status"))
            and price in (None, *prices)
            and by_fields(sub)
            and on_view(sub)
        )

    return paginate(Stored(ctx.store, "subscription"), params, "/v1/subscriptions", keep)


def _has_status(status: str, wanted: str | None) -> bool:
    # By default every status but canceled; `ended` is canceled and incomplete_expired, `all`
    # is every status (API reference: list subscriptions, `status`).
    if wanted is None:
        return status != "canceled"
    if wanted == "ended":
        return status in ("canceled", "incomplete_expired")
    return wanted in ("all", status)


def list_items(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    """GET /v1/subscription_items?subscription=..."""
    sub = ctx.fetch("subscription", params.get("subscription", ""), "subscription")
    return paginate(
        sub["items"]["data"], params, f"/v1/subscription_items?subscription={sub['id']}"
    )


def retrieve_item(ctx: Ctx, params: dict[str, Any], item_id: str) -> dict[str, Any]:
    """GET /v1/subscription_items/{id}."""
    for sub in ctx.store.all("subscription"):
        for item in sub["items"]["data"]:
            if item["id"] == item_id:
                return dict(item)
    raise StripeError(
        f"No such subscription_item: '{item_id}'", status=404, code="resource_missing", param="id"
    )


ROUTES = [
    Route("POST", "/v1/subscriptions", sp.SubscriptionCreateParams, create),
    Route("GET", "/v1/subscriptions", sp.SubscriptionListParams, list_subscriptions),
    Route("GET", "/v1/subscriptions/{}", sp.SubscriptionRetrieveParams, retrieve("subscription")),
    Route("POST", "/v1/subscriptions/{}", sp.SubscriptionUpdateParams, update),
    Route("DELETE", "/v1/subscriptions/{}", sp.SubscriptionCancelParams, cancel),
    Route("GET", "/v1/subscription_items", sp.SubscriptionItemListParams, list_items),
    Route("GET", "/v1/subscription_items/{}", sp.SubscriptionItemRetrieveParams, retrieve_item),
]
