"""Subscription items: built from prices, and the item list an `items[...]` change asks for."""

from __future__ import annotations

import copy
from typing import Any

from ..context import Ctx
from ..errors import StripeError
from ..store import new_id
from .common import merged_metadata, refuse_unsupported

# (item before, item after): None before for an added item, None after for a deleted one.
ItemChange = tuple[dict[str, Any] | None, dict[str, Any] | None]


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
        "transform_usage": price.get("transform_quantity"),
        "trial_period_days": recurring["trial_period_days"],
        "usage_type": recurring["usage_type"],
    }


def billing_interval(items: list[dict[str, Any]]) -> tuple[str, int]:
    """The one (interval, interval_count) every item shares, as classic billing mode requires
    (docs: "Use mixed interval subscriptions" is a flexible billing mode feature)."""
    intervals = {
        (i["price"]["recurring"]["interval"], i["price"]["recurring"]["interval_count"])
        for i in items
    }
    if len(intervals) > 1:
        raise StripeError(
            "Currency and interval fields must match across all plans on this subscription. "
            "Found mismatch in interval field.",
            param="items",
        )
    return intervals.pop()


def planned_items(
    ctx: Ctx, sub: dict[str, Any], sent: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[ItemChange]]:
    """The items after an `items[...]` update (change by id, add by price, `deleted`) and what
    changed; new items share the subscription's current period until a reset moves it."""
    current = {i["id"]: i for i in sub["items"]["data"]}
    after = copy.deepcopy(current)
    changes: list[ItemChange] = []
    for n, spec in enumerate(sent):
        refuse_unsupported(spec, ("id", "price", "quantity", "metadata", "deleted", "clear_usage"))
        if "id" not in spec:
            new = build_item(
                ctx, sub, _required_price(spec, n), spec.get("quantity"), f"items[{n}][price]"
            )
            new.update(
                metadata=spec.get("metadata") or {},
                current_period_start=sub["items"]["data"][0]["current_period_start"],
                current_period_end=sub["items"]["data"][0]["current_period_end"],
            )
            after[new["id"]] = new
            changes.append((None, new))
            continue
        old = current.get(spec["id"])
        if old is None or spec["id"] not in after:
            raise StripeError(
                f"Invalid subscription_item id: {spec['id']}", param=f"items[{n}][id]"
            )
        if spec.get("clear_usage") and not (
            spec.get("deleted") and old["price"]["recurring"]["usage_type"] == "metered"
        ):
            # Allowed only when deleting a metered item; with a billing meter (every metered
            # price since API 2025-03-31) it has no effect: usage lives on the meter (SDK
            # reference: items[].clear_usage, subscription_items.delete).
            raise StripeError(
                "clear_usage is allowed only when deleting an item whose price's usage_type "
                "is metered.",
                param=f"items[{n}][clear_usage]",
            )
        if spec.get("deleted"):
            del after[old["id"]]
            changes.append((old, None))
            continue
        new = build_item(
            ctx,
            sub,
            spec.get("price", old["price"]["id"]),
            spec.get("quantity", old["quantity"]),
            f"items[{n}][price]",
        )
        new.update(
            id=old["id"],
            created=old["created"],
            metadata=merged_metadata(old["metadata"], spec.get("metadata", {})),
            current_period_start=old["current_period_start"],
            current_period_end=old["current_period_end"],
        )
        after[old["id"]] = new
        if (new["price"]["id"], new["quantity"]) != (old["price"]["id"], old["quantity"]):
            changes.append((old, new))
    items = list(after.values())
    _refuse_duplicate_prices(items)
    if not items:
        raise StripeError("A subscription needs at least one item.", param="items")
    return items, changes


def _required_price(spec: dict[str, Any], n: int) -> str:
    if "price" not in spec:
        raise StripeError(
            f"Missing required param: items[{n}][price].",
            code="parameter_missing",
            param=f"items[{n}][price]",
        )
    return str(spec["price"])


def _refuse_duplicate_prices(items: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for item in items:
        price_id = item["price"]["id"]
        if price_id in seen:
            raise StripeError(
                f"Cannot add multiple subscription items with the same plan: {price_id}",
                param="items",
            )
        seen.add(price_id)
