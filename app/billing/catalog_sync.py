"""Push the catalog to Stripe: a product per tier, a price per plan, meters for usage billing.

Idempotent: what already matches is left alone; a changed amount makes a new price that takes
over the lookup key (Stripe prices are immutable), and the old one is archived.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import stripe

from app.billing.gateway import StripeGateway, stripe_id
from app.catalog.schema import Catalog
from app.catalog.stripe_names import (
    MARGIN_FLOOR_METER,
    MARGIN_FLOOR_PRODUCT,
    MARGIN_FLOOR_PRODUCT_NAME,
    PLAN_FEE_METER,
    margin_floor_lookup_key,
    meter_event_name,
    overage_allowances,
    overage_lookup_key,
    product_id,
    usage_product_id,
)


@dataclass(frozen=True)
class PriceSpec:
    """A price the catalog asks for, compared field by field with what Stripe has."""

    lookup_key: str
    product: str
    currency: str
    interval: str
    unit_amount_decimal: Decimal
    meter_event: str | None
    nickname: str

    def matches(self, price: stripe.Price, meter_ids: dict[str, str]) -> bool:
        """Whether an existing Stripe price already is this price."""
        recurring = price.recurring
        return (
            stripe_id(price.product) == self.product
            and price.currency == self.currency
            and recurring is not None
            and recurring.interval == self.interval
            and Decimal(str(price.unit_amount_decimal)) == self.unit_amount_decimal
            and recurring.meter == (meter_ids[self.meter_event] if self.meter_event else None)
        )

    def params(self, meter_ids: dict[str, str]) -> dict[str, Any]:
        """The prices.create parameters."""
        recurring: dict[str, Any] = {"interval": self.interval}
        if self.meter_event:
            recurring.update(usage_type="metered", meter=meter_ids[self.meter_event])
        amount: dict[str, Any] = (
            {"unit_amount": int(self.unit_amount_decimal)}
            if self.unit_amount_decimal == self.unit_amount_decimal.to_integral_value()
            else {"unit_amount_decimal": str(self.unit_amount_decimal)}
        )
        return {
            "product": self.product,
            "currency": self.currency,
            "recurring": recurring,
            "lookup_key": self.lookup_key,
            # Moves the key from an outdated price to this one in the same call.
            "transfer_lookup_key": True,
            "nickname": self.nickname,
            "metadata": {"tollgate_price": self.lookup_key},
            **amount,
        }


def price_specs(catalog: Catalog) -> Iterator[PriceSpec]:
    """Every price the catalog needs: each plan's own, each billable overage, and the margin
    floor of each plan that bills it (one minor unit per unit: the meter counts minor units)."""
    for plan in catalog.plans.values():
        yield PriceSpec(
            lookup_key=plan.key,
            product=product_id(plan.tier),
            currency=plan.currency,
            interval=plan.interval,
            unit_amount_decimal=Decimal(plan.price),
            meter_event=PLAN_FEE_METER if plan.billing == "in_arrears" else None,
            nickname=f"{plan.name} ({plan.interval}ly)",
        )
        for feature_key, allowance in overage_allowances(plan):
            yield PriceSpec(
                lookup_key=overage_lookup_key(plan.key, feature_key),
                product=usage_product_id(feature_key),
                currency=plan.currency,
                interval=plan.interval,
                unit_amount_decimal=Decimal(allowance.overage_price or 0) / allowance.overage_per,
                meter_event=meter_event_name(feature_key),
                nickname=f"{plan.name} {feature_key} overage",
            )
        if plan.bills_margin_floor:
            yield PriceSpec(
                lookup_key=margin_floor_lookup_key(plan.key),
                product=MARGIN_FLOOR_PRODUCT,
                currency=plan.currency,
                interval=plan.interval,
                unit_amount_decimal=Decimal(1),
                meter_event=MARGIN_FLOOR_METER,
                nickname=f"{plan.name} ({plan.interval}ly) margin floor",
            )


def sync_catalog(catalog: Catalog, stripe_gateway: StripeGateway) -> list[str]:
    """Make Stripe match the catalog; returns one line per thing created or changed."""
    report: list[str] = []
    products = {product_id(plan.tier): plan.name for plan in catalog.plans.values()}
    for plan in catalog.plans.values():
        for feature_key, _ in overage_allowances(plan):
            products[usage_product_id(feature_key)] = f"{catalog.features[feature_key].name} usage"
        if plan.bills_margin_floor:
            products[MARGIN_FLOOR_PRODUCT] = MARGIN_FLOOR_PRODUCT_NAME
    for pid, name in products.items():
        report.extend(_sync_product(stripe_gateway, pid, name))

    meter_ids = {meter.event_name: meter.id for meter in stripe_gateway.meters()}
    specs = list(price_specs(catalog))
    for event_name in sorted({spec.meter_event for spec in specs if spec.meter_event}):
        if event_name not in meter_ids:
            meter = stripe_gateway.create_meter(
                {
                    "display_name": event_name.removeprefix("tollgate_").replace("_", " "),
                    "event_name": event_name,
                    "default_aggregation": {"formula": "sum"},
                    "customer_mapping": {
                        "type": "by_id",
                        "event_payload_key": "stripe_customer_id",
                    },
                    "value_settings": {"event_payload_key": "value"},
                }
            )
            meter_ids[event_name] = meter.id
            report.append(f"created meter {event_name}")

    existing = stripe_gateway.prices_by_lookup_key([spec.lookup_key for spec in specs])
    for spec in specs:
        current = existing.get(spec.lookup_key)
        if current is not None and spec.matches(current, meter_ids):
            continue
        stripe_gateway.create_price(spec.params(meter_ids))
        if current is not None:
            stripe_gateway.archive_price(current.id)
            report.append(f"replaced price {spec.lookup_key}")
        else:
            report.append(f"created price {spec.lookup_key}")
    return report


def _sync_product(stripe_gateway: StripeGateway, pid: str, name: str) -> list[str]:
    product = stripe_gateway.retrieve_product(pid)
    if product is None:
        stripe_gateway.create_product({"id": pid, "name": name})
        return [f"created product {pid}"]
    if product.name != name or not product.active:
        stripe_gateway.update_product(pid, {"name": name, "active": True})
        return [f"updated product {pid}"]
    return []
