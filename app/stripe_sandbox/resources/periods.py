"""Billing periods, usage and proration arithmetic, and invoice line items."""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterator
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from ..context import Ctx
from ..store import new_id

# Stripe writes quantities on invoice lines with a multiplication sign ("2 x Pro").
TIMES = "\u00d7"
_FIXED_SECONDS = {"day": 86400, "week": 7 * 86400}


def period_boundary(anchor: int, interval: str, count: int, n: int) -> int:
    """The n-th period boundary after `anchor`: months keep the anchor day, clamped (Jan 31 →
    Feb 28 → Mar 31), as Stripe's billing_cycle_anchor does."""
    if interval in _FIXED_SECONDS:
        return anchor + n * count * _FIXED_SECONDS[interval]
    start = dt.datetime.fromtimestamp(anchor, dt.UTC)
    months = n * count * (12 if interval == "year" else 1)
    year, month = divmod(start.month - 1 + months, 12)
    year += start.year
    day = min(start.day, calendar.monthrange(year, month + 1)[1])
    return int(start.replace(year=year, month=month + 1, day=day).timestamp())


def next_period_end(anchor: int, recurring: dict[str, Any], after: int) -> int:
    """The first boundary strictly after `after`."""
    interval, count = recurring["interval"], recurring["interval_count"]
    n = max(1, _whole_periods_before(anchor, interval, count, after))
    while (end := period_boundary(anchor, interval, count, n)) <= after:
        n += 1
    return end


def _whole_periods_before(anchor: int, interval: str, count: int, moment: int) -> int:
    # A number of periods that surely ends before `moment` (a month short of it, for monthly
    # and yearly ones), so that finding the next boundary takes a step or two, not one per
    # period since the anchor (a subscription renewed for years).
    if interval in _FIXED_SECONDS:
        return (moment - anchor) // (count * _FIXED_SECONDS[interval])
    start, end = (dt.datetime.fromtimestamp(t, dt.UTC) for t in (anchor, moment))
    months = (end.year - start.year) * 12 + end.month - start.month - 1
    return months // (count * (12 if interval == "year" else 1))


def usage(ctx: Ctx, customer_id: str, meter_id: str, start: int, end: int) -> Decimal:
    """Sum of a customer's meter event values with a timestamp in [start, end)."""
    meter = ctx.fetch("billing.meter", meter_id)
    return sum(
        (value for _, value in counted_usage(ctx, meter, customer_id, start, end)), Decimal(0)
    )


def counted_usage(
    ctx: Ctx, meter: dict[str, Any], customer_id: str, start: int, end: int
) -> Iterator[tuple[int, Decimal]]:
    """(timestamp, value) of each of a customer's events for the meter in [start, end); an
    event whose identifier was used before is not counted, as on Stripe."""
    customer_key = meter["customer_mapping"]["event_payload_key"]
    value_key = meter["value_settings"]["event_payload_key"]
    for event in ctx.store.walk("billing.meter_event"):
        if (
            event["event_name"] == meter["event_name"]
            and not event.get("_duplicate")
            and event["payload"].get(customer_key) == customer_id
            and start <= event["timestamp"] < end
        ):
            yield event["timestamp"], Decimal(event["payload"].get(value_key, "0"))


def line(
    ctx: Ctx,
    item: dict[str, Any],
    amount: int,
    period: tuple[int, int],
    description: str,
    *,
    quantity: int | None,
    proration: bool = False,
) -> dict[str, Any]:
    """An invoice line for a subscription item, shaped as in API 2025-03-31 and later."""
    return {
        "id": new_id("il", 24),
        "object": "line_item",
        "amount": amount,
        "currency": item["price"]["currency"],
        "description": description,
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": None,
        "livemode": False,
        "metadata": {},
        "period": {"start": period[0], "end": period[1]},
        "quantity": quantity,
        "quantity_decimal": None if quantity is None else str(quantity),
        "subscription": item["subscription"],
        "pretax_credit_amounts": [],
        "taxes": [],
        "subtotal": amount,
        "pricing": {
            "type": "price_details",
            "unit_amount_decimal": item["price"]["unit_amount_decimal"],
            "price_details": {"price": item["price"]["id"], "product": item["price"]["product"]},
        },
        "parent": {
            "type": "subscription_item_details",
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": proration,
                "proration_details": {"credited_items": None},
                "subscription": item["subscription"],
                "subscription_item": item["id"],
            },
        },
    }


def product_name(ctx: Ctx, price: dict[str, Any]) -> str:
    """The name shown on invoices and hosted pages for a price."""
    product = ctx.store.get(price["product"])
    return str(product["name"] if product else price["product"])


def unit_amount(price: dict[str, Any]) -> Decimal:
    """A price's unit amount in minor units, fractions of a cent included."""
    return Decimal(price["unit_amount_decimal"])


def price_amount(price: dict[str, Any], quantity: Decimal | int) -> int:
    """Quantity times unit amount in minor units, after the price's transform_quantity, rounded
    half up at the line as Stripe bills fractional-cent prices (to the nearest cent)."""
    return _round(billed_quantity(price, Decimal(quantity)) * unit_amount(price))


def billed_quantity(price: dict[str, Any], quantity: Decimal) -> Decimal:
    """The quantity a price bills: transform_quantity divides it and rounds up or down
    (docs: "Usage-based billing" > "Transform quantities")."""
    transform = price.get("transform_quantity")
    if not transform:
        return quantity
    mode = ROUND_CEILING if transform["round"] == "up" else ROUND_FLOOR
    return (quantity / Decimal(transform["divide_by"])).to_integral_value(mode)


def cycle_line(
    ctx: Ctx,
    item: dict[str, Any],
    period: tuple[int, int],
    customer_id: str,
    usage_period: tuple[int, int] | None = None,
    *,
    trial: bool = False,
) -> dict[str, Any]:
    """The line an item adds to a period's invoice: licensed in advance for `period`, metered
    in arrears for `usage_period` (the period that just ended)."""
    price, name = item["price"], product_name(ctx, item["price"])
    if is_metered(item):
        billed = usage_period or period
        counted = (max(billed[0], usage_since(ctx, item)), billed[1])
        used = usage(ctx, customer_id, price["recurring"]["meter"], *counted)
        quantity = int(used.to_integral_value(ROUND_HALF_UP))
        return line(
            ctx,
            item,
            price_amount(price, used),
            counted,
            f"{quantity} {TIMES} {name}",
            quantity=quantity,
        )
    quantity = item["quantity"]
    if trial:
        return line(ctx, item, 0, period, f"Trial period for {name}", quantity=quantity)
    return line(
        ctx,
        item,
        price_amount(price, quantity),
        period,
        f"{quantity} {TIMES} {name}",
        quantity=quantity,
    )


def usage_since(ctx: Ctx, item: dict[str, Any]) -> int:
    """When a metered item started counting: a price added during a period counts the meter's
    usage from then on, the usage before belongs to the item it replaced (kept on the
    subscription as `_usage_since`, by item id, since items show no private keys)."""
    sub = ctx.store.get(item["subscription"]) or {}
    return int(sub.get("_usage_since", {}).get(item["id"], 0))


def is_metered(item: dict[str, Any]) -> bool:
    """Metered items are billed in arrears from meter usage, never prorated."""
    return bool(item["price"]["recurring"]["usage_type"] == "metered")


def proration_lines(
    ctx: Ctx,
    old_item: dict[str, Any] | None,
    new_item: dict[str, Any] | None,
    at: int,
    period: tuple[int, int],
) -> list[dict[str, Any]]:
    """Credit for the unused time of `period` on the old item (if any) and a charge for the
    rest of it on the new one (if any); metered items are billed on usage instead."""
    start, end = period
    if not start <= at < end:
        return []
    fraction = Decimal(end - at) / Decimal(end - start)
    when = dt.datetime.fromtimestamp(at, dt.UTC).strftime("%d %b %Y")
    lines = []
    for item, sign, label in ((old_item, -1, "Unused"), (new_item, 1, "Remaining")):
        if item is None or is_metered(item):
            continue
        name = product_name(ctx, item["price"])
        full = billed_quantity(item["price"], Decimal(item["quantity"])) * unit_amount(
            item["price"]
        )
        lines.append(
            line(
                ctx,
                item,
                sign * _round(full * fraction),
                (at, end),
                f"{label} time on {name} after {when}",
                quantity=item["quantity"],
                proration=True,
            )
        )
    return lines


def _round(amount: Decimal) -> int:
    return int(amount.quantize(Decimal(1), ROUND_HALF_UP))
