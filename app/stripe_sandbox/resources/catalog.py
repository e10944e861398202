"""Customers, products and prices."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import stripe.params as sp

from ..context import Ctx
from ..errors import StripeError
from ..listing import Stored, hide_test_clocks, matching, paginate
from ..router import Route
from ..shapes import skeleton
from ..store import new_id
from .common import (
    ADDRESS_FIELDS,
    assign,
    deleted,
    lister,
    retrieve,
    update_with_event,
)

_CUSTOMER_FIELDS = (
    "address",
    "description",
    "email",
    "invoice_settings",
    "metadata",
    "name",
    "phone",
    "preferred_locales",
    "shipping",
    "tax_exempt",
)
_PRODUCT_FIELDS = (
    "active",
    "description",
    "images",
    "metadata",
    "name",
    "shippable",
    "statement_descriptor",
    "tax_code",
    "unit_label",
    "url",
)
_MAX_DECIMALS = 12
_PRICE_UPDATE_FIELDS = ("active", "lookup_key", "metadata", "nickname", "tax_behavior")


def create_customer(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/customers."""
    clock = params.get("test_clock")
    if clock is not None:
        ctx.fetch("test_helpers.test_clock", clock, "test_clock")
    customer = skeleton(
        "customer",
        new_id("cus", 14),
        ctx.now(clock),
    )
    customer.update(
        address=dict.fromkeys(ADDRESS_FIELDS),
        balance=0,
        delinquent=False,
        invoice_prefix=customer["id"][4:12].upper(),
        next_invoice_sequence=1,
        invoice_settings={
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        preferred_locales=[],
        tax_exempt="none",
        test_clock=clock,
    )
    assign(customer, params, _CUSTOMER_FIELDS)
    ctx.save(customer)
    ctx.emit("customer.created", customer)
    return customer


def update_customer(ctx: Ctx, params: dict[str, Any], customer_id: str) -> dict[str, Any]:
    """POST /v1/customers/{id}."""
    customer = ctx.fetch("customer", customer_id)
    if "invoice_settings" in params:
        params = {
            **params,
            "invoice_settings": {**customer["invoice_settings"], **params["invoice_settings"]},
        }
    return update_with_event(ctx, customer, "customer.updated", params, _CUSTOMER_FIELDS)


def delete_customer(ctx: Ctx, params: dict[str, Any], customer_id: str) -> dict[str, Any]:
    """DELETE /v1/customers/{id}."""
    customer = ctx.fetch("customer", customer_id)
    ctx.emit("customer.deleted", customer)
    customer["deleted"] = True
    ctx.save(customer)
    return deleted(customer)


def list_customers(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    """GET /v1/customers, filtered by email, created and test_clock."""
    by_fields = matching(params, "email", "test_clock")
    on_view = hide_test_clocks(params, "test_clock")

    def keep(customer: dict[str, Any]) -> bool:
        return by_fields(customer) and on_view(customer)

    return paginate(Stored(ctx.store, "customer"), params, "/v1/customers", keep)


def create_product(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/products."""
    if "name" not in params:
        raise StripeError("Missing required param: name.", code="parameter_missing", param="name")
    product = skeleton(
        "product",
        params.get("id") or new_id("prod", 14),
        ctx.now(),
    )
    product.update(
        active=True, images=[], marketing_features=[], type="service", updated=product["created"]
    )
    assign(product, params, _PRODUCT_FIELDS)
    ctx.save(product)
    ctx.emit("product.created", product)
    return product


def update_product(ctx: Ctx, params: dict[str, Any], product_id: str) -> dict[str, Any]:
    """POST /v1/products/{id}."""
    product = ctx.fetch("product", product_id)
    product["updated"] = ctx.now()
    return update_with_event(ctx, product, "product.updated", params, _PRODUCT_FIELDS)


def create_price(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/prices."""
    if "product_data" in params:
        product_id = create_product(ctx, params["product_data"])["id"]
    elif "product" in params:
        product_id = ctx.fetch("product", params["product"], "product")["id"]
    else:
        raise StripeError(
            "Missing required param: product.", code="parameter_missing", param="product"
        )
    price = skeleton("price", new_id("price", 24), ctx.now())
    unit_amount, unit_amount_decimal = _unit_amount(params)
    price.update(
        active=params.get("active", True),
        billing_scheme="per_unit",
        currency=params["currency"].lower(),
        product=product_id,
        recurring=_recurring(ctx, params.get("recurring")),
        tax_behavior=params.get("tax_behavior", "unspecified"),
        unit_amount=unit_amount,
        unit_amount_decimal=unit_amount_decimal,
        transform_quantity=params.get("transform_quantity"),
    )
    price["type"] = "recurring" if price["recurring"] else "one_time"
    _claim_lookup_key(ctx, price, params)
    assign(price, params, ("lookup_key", "metadata", "nickname"))
    ctx.save(price)
    ctx.emit("price.created", price)
    return price


def _unit_amount(params: dict[str, Any]) -> tuple[int | None, str]:
    # unit_amount_decimal is in minor units with at most 12 decimals; unit_amount mirrors it
    # only when it is a whole number of cents (API reference: Price object).
    if "unit_amount" in params and "unit_amount_decimal" in params:
        raise StripeError(
            "You may only specify one of these parameters: unit_amount, unit_amount_decimal.",
            param="unit_amount_decimal",
        )
    if "unit_amount_decimal" not in params:
        amount = params.get("unit_amount", 0)
        return amount, str(amount)
    sent = params["unit_amount_decimal"]
    value = Decimal(sent)
    if value < 0 or -value.as_tuple().exponent > _MAX_DECIMALS:  # type: ignore[operator]
        raise StripeError(
            f"Invalid decimal: {sent}. Use a non-negative amount with at most "
            f"{_MAX_DECIMALS} decimal places.",
            param="unit_amount_decimal",
        )
    whole = value == value.to_integral_value()
    return (int(value) if whole else None), (str(int(value)) if whole else format(value, "f"))


def _recurring(ctx: Ctx, sent: dict[str, Any] | None) -> dict[str, Any] | None:
    if sent is None:
        return None
    usage_type = sent.get("usage_type", "licensed")
    meter = sent.get("meter")
    # Since API 2025-03-31 a metered price must be backed by a billing meter.
    if usage_type == "metered":
        if meter is None:
            raise StripeError(
                "Missing required param: recurring[meter].",
                code="parameter_missing",
                param="recurring[meter]",
            )
        ctx.fetch("billing.meter", meter, "recurring[meter]")
    return {
        "interval": sent["interval"],
        "interval_count": sent.get("interval_count", 1),
        "meter": meter,
        "usage_type": usage_type,
        "trial_period_days": sent.get("trial_period_days"),
    }


def _claim_lookup_key(ctx: Ctx, price: dict[str, Any], params: dict[str, Any]) -> None:
    key = params.get("lookup_key")
    if key is None:
        return
    for other in ctx.store.all("price"):
        if other["lookup_key"] == key and other["id"] != price["id"]:
            # Lookup keys are unique; `transfer_lookup_key` moves one from its old price.
            if not params.get("transfer_lookup_key"):
                raise StripeError(
                    f"A price ({other['id']}) already uses that lookup key.",
                    param="lookup_key",
                )
            other["lookup_key"] = None
            ctx.save(other)


def update_price(ctx: Ctx, params: dict[str, Any], price_id: str) -> dict[str, Any]:
    """POST /v1/prices/{id}."""
    price = ctx.fetch("price", price_id)
    _claim_lookup_key(ctx, price, params)
    return update_with_event(ctx, price, "price.updated", params, _PRICE_UPDATE_FIELDS)


def list_prices(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    """GET /v1/prices, filtered by lookup_keys, active, product, type."""
    by_fields = matching(params, "active", "product", "type", "currency")
    keys = params.get("lookup_keys")

    def keep(price: dict[str, Any]) -> bool:
        return by_fields(price) and (keys is None or price["lookup_key"] in keys)

    return paginate(Stored(ctx.store, "price"), params, "/v1/prices", keep)


ROUTES = [
    Route("POST", "/v1/customers", sp.CustomerCreateParams, create_customer),
    Route("GET", "/v1/customers", sp.CustomerListParams, list_customers),
    Route("GET", "/v1/customers/{}", sp.CustomerRetrieveParams, retrieve("customer")),
    Route("POST", "/v1/customers/{}", sp.CustomerUpdateParams, update_customer),
    Route("DELETE", "/v1/customers/{}", sp.CustomerDeleteParams, delete_customer),
    Route("POST", "/v1/products", sp.ProductCreateParams, create_product),
    Route("GET", "/v1/products", sp.ProductListParams, lister("product", "/v1/products", "active")),
    Route("GET", "/v1/products/{}", sp.ProductRetrieveParams, retrieve("product")),
    Route("POST", "/v1/products/{}", sp.ProductUpdateParams, update_product),
    Route("POST", "/v1/prices", sp.PriceCreateParams, create_price),
    Route("GET", "/v1/prices", sp.PriceListParams, list_prices),
    Route("GET", "/v1/prices/{}", sp.PriceRetrieveParams, retrieve("price")),
    Route("POST", "/v1/prices/{}", sp.PriceUpdateParams, update_price),
]
