"""Subscriptions: start (with or without trial), change price with prorations, cancel."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import stripe.params as sp

from ..context import DAY, Ctx, snapshot
from ..errors import StripeError
from ..listing import matching, paginate
from ..router import Route
from ..store import new_id
from .common import refuse_unsupported, retrieve, skeleton
from .lifecycle import cancel_subscription, create_invoice, finalize_and_pay
from .periods import cycle_line, next_period_end, proration_lines

_SUB_NULLS = (
    "application application_fee_percent billing_cycle_anchor_config cancel_at canceled_at "
    "days_until_due default_payment_method default_source description ended_at latest_invoice "
    "next_pending_invoice_item_invoice on_behalf_of pause_collection pending_invoice_item_interval "
    "pending_setup_intent pending_update schedule transfer_data trial_end trial_start "
    "billing_thresholds customer_account"
)
_CREATE_SUPPORTED = (
    "customer",
    "items",
    "metadata",
    "trial_period_days",
    "trial_end",
    "default_payment_method",
    "description",
    "trial_settings",
)
_UPDATE_SUPPORTED = (
    "items",
    "proration_behavior",
    "proration_date",
    "cancel_at_period_end",
    "metadata",
    "default_payment_method",
    "description",
)


def build_item(
    ctx: Ctx, sub: dict[str, Any], price_id: str, quantity: int | None, param: str
) -> dict[str, Any]:
    """A subscription item with its price embedded, as the API shows it."""
    price = ctx.fetch("price", price_id, param)
    if price["recurring"] is None:
        raise StripeError(
            "The price specified is not recurring; subscriptions need a recurring price.",
            param=param,
        )
    metered = price["recurring"]["usage_type"] == "metered"
    # Metered items carry no quantity: usage decides the amount.
    return {
        "id": new_id("si", 14),
        "object": "subscription_item",
        "created": ctx.now(sub["test_clock"]),
        "discounts": [],
        "metadata": {},
        "price": copy.deepcopy(price),
        "plan": _plan(price),
        "quantity": None if metered else (quantity or 1),
        "subscription": sub["id"],
        "tax_rates": [],
        "billing_thresholds": None,
        "current_period_start": None,
        "current_period_end": None,
    }


def _plan(price: dict[str, Any]) -> dict[str, Any]:
    # The legacy Plan view of a recurring price, still embedded on subscription items.
    recurring = price["recurring"]
    return {
        "id": price["id"],
        "object": "plan",
        "active": price["active"],
        "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": price["billing_scheme"],
        "created": price["created"],
        "currency": price["currency"],
        "interval": recurring["interval"],
        "interval_count": recurring["interval_count"],
        "livemode": False,
        "metadata": price["metadata"],
        "meter": recurring["meter"],
        "nickname": price["nickname"],
        "product": price["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": recurring["trial_period_days"],
        "usage_type": recurring["usage_type"],
    }


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
    sub = skeleton("subscription", new_id("sub", 24), now, _SUB_NULLS)
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
    ctx.save(sub)
    if on_created is not None:
        on_created(sub)
    ctx.emit("customer.subscription.created", sub)
    invoice = create_invoice(ctx, sub, "subscription_create", lines, (now, end))
    finalize_and_pay(ctx, invoice)
    return ctx.fetch("subscription", sub["id"])


def create(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/subscriptions (free and in-arrears plans are started this way)."""
    refuse_unsupported(params, _CREATE_SUPPORTED)
    for name in ("customer", "items"):
        if name not in params:
            raise StripeError(
                f"Missing required param: {name}.", code="parameter_missing", param=name
            )
    customer = ctx.fetch("customer", params["customer"], "customer")
    return start_subscription(
        ctx, customer, params["items"], trial_days=params.get("trial_period_days"), options=params
    )


def planned_items(
    ctx: Ctx, sub: dict[str, Any], sent: list[dict[str, Any]]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(old item, new item) pairs for an `items[...]` change; only price/quantity swaps."""
    pairs = []
    for n, change_spec in enumerate(sent):
        refuse_unsupported(change_spec, ("id", "price", "quantity", "metadata"))
        if "id" not in change_spec:
            raise StripeError(
                f"The Stripe sandbox only changes existing items (pass items[{n}][id]).",
                param=f"items[{n}][id]",
            )
        old = next((i for i in sub["items"]["data"] if i["id"] == change_spec["id"]), None)
        if old is None:
            raise StripeError(
                f"Invalid subscription_item id: {change_spec['id']}", param=f"items[{n}][id]"
            )
        new = build_item(
            ctx,
            sub,
            change_spec.get("price", old["price"]["id"]),
            change_spec.get("quantity", old["quantity"]),
            f"items[{n}][price]",
        )
        if new["price"]["recurring"]["interval"] != old["price"]["recurring"]["interval"]:
            raise StripeError(
                "The Stripe sandbox does not change a subscription's billing interval.",
                param=f"items[{n}][price]",
            )
        new.update(
            id=old["id"],
            created=old["created"],
            current_period_start=old["current_period_start"],
            current_period_end=old["current_period_end"],
        )
        pairs.append((old, new))
    return pairs


def update(ctx: Ctx, params: dict[str, Any], sub_id: str) -> dict[str, Any]:
    """POST /v1/subscriptions/{id}."""
    refuse_unsupported(params, _UPDATE_SUPPORTED)
    sub = ctx.fetch("subscription", sub_id)
    if sub["status"] == "canceled":
        raise StripeError(
            "A canceled subscription can only update its cancellation_details and metadata.",
            param="items" if "items" in params else None,
        )
    before = snapshot(sub)
    now = ctx.now(sub["test_clock"])
    pairs = planned_items(ctx, sub, params.get("items", []))
    at = params.get("proration_date", now)
    lines = [line for old, new in pairs for line in proration_lines(ctx, old, new, at)]
    replaced = {new["id"]: new for _, new in pairs}
    sub["items"]["data"] = [replaced.get(i["id"], i) for i in sub["items"]["data"]]
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
    behavior = params.get("proration_behavior", "create_prorations")
    if behavior == "create_prorations":
        sub["_pending_lines"] = sub.get("_pending_lines", []) + lines
    ctx.save(sub)
    if sub != before:
        ctx.emit("customer.subscription.updated", sub, before)
    if behavior == "always_invoice" and lines:
        start = min(line["period"]["start"] for line in lines)
        invoice = create_invoice(ctx, sub, "subscription_update", lines, (start, period_end(sub)))
        finalize_and_pay(ctx, invoice)
    return ctx.fetch("subscription", sub_id)


def period_end(sub: dict[str, Any]) -> int:
    """When the current billing period of the subscription ends."""
    return int(min(i["current_period_end"] for i in sub["items"]["data"]))


def cancel(ctx: Ctx, params: dict[str, Any], sub_id: str) -> dict[str, Any]:
    """DELETE /v1/subscriptions/{id}: cancel at once."""
    refuse_unsupported(params, ("cancellation_details",))
    sub = ctx.fetch("subscription", sub_id)
    if sub["status"] == "canceled":
        raise StripeError(
            f"No such subscription: '{sub_id}'", status=404, code="resource_missing", param="id"
        )
    if "cancellation_details" in params:
        sub["cancellation_details"].update(params["cancellation_details"])
    return cancel_subscription(ctx, sub, "cancellation_requested")


def list_subscriptions(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    """GET /v1/subscriptions; like Stripe, canceled ones only with status=canceled or all."""
    status = params.get("status")
    by_fields = matching(params, "customer", "test_clock")

    def keep(sub: dict[str, Any]) -> bool:
        if status == "all":
            return by_fields(sub)
        if status is None:
            return by_fields(sub) and sub["status"] != "canceled"
        return by_fields(sub) and sub["status"] == status

    return paginate(ctx.store.all("subscription"), params, "/v1/subscriptions", keep)


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
