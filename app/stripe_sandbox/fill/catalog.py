"""The filled account's products and prices: what it sold before Tollgate.

Where `flask catalog sync` already made Tollgate's prices (their lookup keys are the plan keys),
the account sold the same plans before: a product of its own per tier, a price per plan with no
lookup key, and for monthly plans a cheaper grandfathered price under a lookup key of its own.
Each of these legacy prices bills the plan it copies, which the operator maps in plans.toml
(`stripe_prices`). In a sandbox with no synced prices, the account sold plans of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..resources.catalog import create_price, create_product
from .quiet import Quiet

# Tiers of an account with no synced prices: (name, monthly price in cents).
_OWN_TIERS = (("Basic", 900), ("Premium", 2900))
_GRANDFATHERED_SHARE = 0.8
_YEARLY_MONTHS = 10


@dataclass
class Catalog:
    """The recurring prices subscriptions are drawn from, and the legacy ones among them."""

    monthly: list[dict[str, Any]] = field(default_factory=list)
    yearly: list[dict[str, Any]] = field(default_factory=list)
    # Prices of Tollgate's catalog sync: some subscriptions are on them.
    synced: list[dict[str, Any]] = field(default_factory=list)
    # Legacy price id → the plan (lookup key of the synced price) it bills, if any.
    legacy: dict[str, str | None] = field(default_factory=dict)


def make_catalog(ctx: Quiet) -> Catalog:
    """Create the legacy products and prices (at the time `ctx` is pinned to)."""
    synced = [p for p in ctx.store.all("price") if _is_plan_price(p)]
    catalog = Catalog(synced=synced)
    for price in synced:
        (catalog.monthly if _interval(price) == "month" else catalog.yearly).append(price)
    products: dict[str, str] = {}
    for price in synced:
        if price["product"] not in products:
            name = (ctx.store.get(price["product"]) or {}).get("name") or price["product"]
            products[price["product"]] = ctx.count(create_product(ctx, {"name": name}))["id"]
        plan = price["lookup_key"]
        model = (price["currency"], _interval(price), price["unit_amount"])
        _legacy_prices(ctx, catalog, products[price["product"]], model, plan, plan)
    if not synced:
        for name, amount in _OWN_TIERS:
            product = ctx.count(create_product(ctx, {"name": name}))["id"]
            for interval, unit in (("month", amount), ("year", amount * _YEARLY_MONTHS)):
                key = f"{name.lower()}_{interval}ly"
                _legacy_prices(ctx, catalog, product, ("usd", interval, unit), None, key)
    return catalog


def _legacy_prices(
    ctx: Quiet,
    catalog: Catalog,
    product: str,
    model: tuple[str, str, int],
    plan: str | None,
    key: str,
) -> None:
    # A price like the model's with no lookup key; for a monthly one also a cheaper,
    # grandfathered one under a lookup key of the old account's own.
    _, interval, amount = model
    prices = [_price(ctx, product, model, amount, {})]
    if interval == "month":
        cheaper = int(round(amount * _GRANDFATHERED_SHARE, -2))
        grandfathered = {"lookup_key": f"{key}_grandfathered", "transfer_lookup_key": True}
        prices.append(_price(ctx, product, model, cheaper, grandfathered))
    for price in prices:
        catalog.legacy[price["id"]] = plan
        (catalog.monthly if interval == "month" else catalog.yearly).append(price)


def _price(
    ctx: Quiet, product: str, model: tuple[str, str, int], amount: int, extra: dict[str, Any]
) -> dict[str, Any]:
    currency, interval, _ = model
    params = {
        "currency": currency,
        "unit_amount": amount,
        "recurring": {"interval": interval},
        "product": product,
        **extra,
    }
    return ctx.count(create_price(ctx, params))


def _interval(price: dict[str, Any]) -> str:
    return str(price["recurring"]["interval"])


def _is_plan_price(price: dict[str, Any]) -> bool:
    recurring = price["recurring"]
    return bool(
        price["lookup_key"]
        and price["active"]
        and recurring is not None
        and recurring["usage_type"] == "licensed"
        and recurring["interval_count"] == 1
        and recurring["interval"] in ("month", "year")
        and (price["unit_amount"] or 0) > 0
    )
