"""A customer's tax IDs: created, listed, read and deleted, through the API or the portal."""

from __future__ import annotations

import re
from typing import Any

import stripe.params as sp

from ..context import Ctx
from ..errors import StripeError, no_such
from ..listing import list_object, paginate
from ..router import Route
from ..shapes import skeleton
from ..store import new_id
from .common import deleted

# The tax ID types the sandbox checks, with the country each belongs to (None: the value's first
# two letters, as for EU VAT numbers) and the form of a valid value. Stripe knows some hundred
# types (API reference: Create a Customer tax ID, `type`); these are the common ones.
_EU = "AT|BE|BG|CY|CZ|DE|DK|EE|ES|FI|FR|GR|HR|HU|IE|IT|LT|LU|LV|MT|NL|PL|PT|RO|SE|SI|SK|XI|EU"
TAX_ID_TYPES: dict[str, tuple[str | None, re.Pattern[str]]] = {
    "eu_vat": (None, re.compile(rf"^({_EU})[0-9A-Z+*]{{2,12}}$")),
    "gb_vat": ("GB", re.compile(r"^GB([0-9]{9}|[0-9]{12})$")),
    "no_vat": ("NO", re.compile(r"^[0-9]{9}MVA$")),
    "us_ein": ("US", re.compile(r"^[0-9]{2}-?[0-9]{7}$")),
    "ca_bn": ("CA", re.compile(r"^[0-9]{9}$")),
    "au_abn": ("AU", re.compile(r"^[0-9]{11}$")),
    "in_gst": ("IN", re.compile(r"^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][0-9A-Z]Z[0-9A-Z]$")),
}


def add_tax_id(ctx: Ctx, customer_id: str, tax_type: str, value: str) -> dict[str, Any]:
    """Check and store a tax ID of a customer, and emit `customer.tax_id.created`."""
    customer = ctx.fetch("customer", customer_id)
    if tax_type not in TAX_ID_TYPES:
        raise StripeError(
            f"Invalid type: must be one of {', '.join(sorted(TAX_ID_TYPES))}", param="type"
        )
    value = value.replace(" ", "").upper()
    country, form = TAX_ID_TYPES[tax_type]
    if not form.match(value):
        # Stripe's answer to a value not of the type's form (code `tax_id_invalid`).
        raise StripeError(f"Invalid value for {tax_type}.", code="tax_id_invalid", param="value")
    tax_id = skeleton("tax_id", new_id("txi", 24), ctx.now(customer["test_clock"]))
    tax_id.update(
        country=country or value[:2],
        customer=customer["id"],
        owner={"customer": customer["id"], "type": "customer", "customer_account": None},
        type=tax_type,
        value=value,
        # Stripe verifies EU VAT numbers against VIES afterwards; the sandbox leaves them
        # pending, and other types are never verified ("unavailable").
        verification={
            "status": "pending" if tax_type == "eu_vat" else "unavailable",
            "verified_address": None,
            "verified_name": None,
        },
    )
    ctx.save(tax_id)
    ctx.emit("customer.tax_id.created", tax_id)
    return tax_id


def remove_tax_id(ctx: Ctx, customer_id: str, tax_id: str) -> dict[str, Any]:
    """Delete a customer's tax ID and emit `customer.tax_id.deleted`."""
    found = _customer_tax_id(ctx, customer_id, tax_id)
    ctx.emit("customer.tax_id.deleted", found)
    found["deleted"] = True
    ctx.save(found)
    return deleted(found)


def tax_ids_of(ctx: Ctx, customer_id: str) -> list[dict[str, Any]]:
    """A customer's tax IDs, newest first."""
    return [
        t for t in ctx.store.all("tax_id") if t["customer"] == customer_id and not t.get("deleted")
    ][::-1]


def _customer_tax_id(ctx: Ctx, customer_id: str, tax_id: str) -> dict[str, Any]:
    found = ctx.fetch("tax_id", tax_id)
    if found["customer"] != customer_id:
        raise no_such("tax id", tax_id)
    return found


def create(ctx: Ctx, params: dict[str, Any], customer_id: str) -> dict[str, Any]:
    """POST /v1/customers/{id}/tax_ids."""
    return add_tax_id(ctx, customer_id, params["type"], params["value"])


def list_tax_ids(ctx: Ctx, params: dict[str, Any], customer_id: str) -> dict[str, Any]:
    """GET /v1/customers/{id}/tax_ids."""
    ctx.fetch("customer", customer_id)
    return paginate(tax_ids_of(ctx, customer_id), params, f"/v1/customers/{customer_id}/tax_ids")


def retrieve_of_customer(
    ctx: Ctx, params: dict[str, Any], customer_id: str, tax_id: str
) -> dict[str, Any]:
    """GET /v1/customers/{id}/tax_ids/{id}."""
    return _customer_tax_id(ctx, customer_id, tax_id)


def delete(ctx: Ctx, params: dict[str, Any], customer_id: str, tax_id: str) -> dict[str, Any]:
    """DELETE /v1/customers/{id}/tax_ids/{id}."""
    return remove_tax_id(ctx, customer_id, tax_id)


def retrieve(ctx: Ctx, params: dict[str, Any], tax_id: str) -> dict[str, Any]:
    """GET /v1/tax_ids/{id}: a customer's tax ID found by its id alone."""
    return ctx.fetch("tax_id", tax_id)


def customer_tax_ids(ctx: Ctx, customer: dict[str, Any]) -> dict[str, Any]:
    """A customer's `tax_ids`, which Stripe sends only when expanded."""
    customer_id = customer["id"]
    return list_object(f"/v1/customers/{customer_id}/tax_ids", tax_ids_of(ctx, customer_id))


ROUTES = [
    Route("POST", "/v1/customers/{}/tax_ids", sp.CustomerTaxIdCreateParams, create),
    Route("GET", "/v1/customers/{}/tax_ids", sp.CustomerTaxIdListParams, list_tax_ids),
    Route(
        "GET",
        "/v1/customers/{}/tax_ids/{}",
        sp.CustomerTaxIdRetrieveParams,
        retrieve_of_customer,
    ),
    Route("DELETE", "/v1/customers/{}/tax_ids/{}", sp.CustomerTaxIdDeleteParams, delete),
    Route("GET", "/v1/tax_ids/{}", sp.TaxIdRetrieveParams, retrieve),
]
EXPANSIONS = {("customer", "tax_ids"): customer_tax_ids}
