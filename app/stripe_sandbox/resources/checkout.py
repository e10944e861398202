"""Checkout Sessions in subscription mode, and what paying on the hosted page does."""

from __future__ import annotations

from typing import Any

import stripe.params.checkout as csp

from ..context import DAY, Ctx
from ..errors import StripeError, card_declined
from ..listing import list_object, paginate
from ..router import Route
from ..shapes import skeleton
from ..store import new_id
from .catalog import create_customer, update_customer
from .common import change, lister, refuse_unsupported, retrieve
from .payments import FAILS_CHARGES, attach_card, card_for
from .periods import price_amount
from .start import start_subscription

_SUPPORTED = (
    "mode",
    "line_items",
    "success_url",
    "cancel_url",
    "customer",
    "customer_email",
    "client_reference_id",
    "metadata",
    "subscription_data",
    "payment_method_collection",
    "expires_at",
    "allow_promotion_codes",
)


def create(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/checkout/sessions (subscription mode)."""
    refuse_unsupported(params, _SUPPORTED)
    if params.get("mode") != "subscription":
        raise StripeError("The Stripe sandbox supports mode=subscription only.", param="mode")
    if not params.get("line_items"):
        raise StripeError(
            "Missing required param: line_items.", code="parameter_missing", param="line_items"
        )
    refuse_unsupported(
        params.get("subscription_data", {}),
        ("trial_period_days", "metadata", "trial_settings", "description"),
    )
    customer = params.get("customer")
    if customer:
        ctx.fetch("customer", customer, "customer")
    prices = [
        ctx.fetch("price", i.get("price", ""), f"line_items[{n}][price]")
        for n, i in enumerate(params["line_items"])
    ]
    trial = params.get("subscription_data", {}).get("trial_period_days")
    subtotal = (
        0
        if trial
        else sum(
            price_amount(p, i.get("quantity", 1))
            for p, i in zip(prices, params["line_items"], strict=True)
            if p["recurring"] and p["recurring"]["usage_type"] == "licensed"
        )
    )
    now = ctx.now()
    session = skeleton("checkout.session", "cs_test_" + new_id("a", 56)[2:], now)
    session.update(
        amount_subtotal=subtotal,
        amount_total=subtotal,
        automatic_tax={"enabled": False, "liability": None, "status": None, "provider": None},
        currency=prices[0]["currency"],
        custom_fields=[],
        customer_details=None,
        expires_at=params.get("expires_at", now + DAY),
        mode="subscription",
        payment_method_collection=params.get("payment_method_collection", "always"),
        payment_method_options={},
        payment_method_types=["card"],
        payment_status="unpaid",
        shipping_options=[],
        status="open",
        ui_mode="hosted",
        url=f"{ctx.base_url}/sandbox/checkout/{session['id']}",
        _line_items=params["line_items"],
        _subscription_data=params.get("subscription_data", {}),
    )
    for field in (
        "success_url",
        "cancel_url",
        "customer",
        "customer_email",
        "client_reference_id",
        "metadata",
        "allow_promotion_codes",
    ):
        if field in params:
            session[field] = params[field]
    return ctx.save(session)


def line_items(ctx: Ctx, session: dict[str, Any]) -> dict[str, Any]:
    """A session's line items as the `item` objects Checkout shows."""
    items = []
    for n, spec in enumerate(session["_line_items"]):
        price = ctx.fetch("price", spec["price"])
        quantity = spec.get("quantity", 1)
        product = ctx.store.get(price["product"]) or {}
        amount = price_amount(price, quantity)
        items.append(
            {
                "id": f"li_{session['id'][8:30]}{n}",
                "object": "item",
                "amount_discount": 0,
                "amount_subtotal": amount,
                "amount_tax": 0,
                "amount_total": amount,
                "currency": price["currency"],
                "description": product.get("name"),
                "price": price,
                "quantity": quantity,
                "metadata": {},
            }
        )
    return list_object(f"/v1/checkout/sessions/{session['id']}/line_items", items)


def list_line_items(ctx: Ctx, params: dict[str, Any], session_id: str) -> dict[str, Any]:
    """GET /v1/checkout/sessions/{id}/line_items."""
    session = ctx.fetch("checkout.session", session_id)
    listing = line_items(ctx, session)
    return paginate(listing["data"], params, listing["url"])


def expire(ctx: Ctx, params: dict[str, Any], session_id: str) -> dict[str, Any]:
    """POST /v1/checkout/sessions/{id}/expire."""
    session = _open(ctx, session_id)
    return change(ctx, session, "checkout.session.expired", status="expired")


def _open(ctx: Ctx, session_id: str) -> dict[str, Any]:
    session = ctx.fetch("checkout.session", session_id)
    if session["status"] != "open":
        raise StripeError(f"This Checkout Session is no longer active ({session['status']}).")
    return session


def pay(ctx: Ctx, session_id: str, email: str, card_number: str, expiry: str) -> str:
    """The hosted page's Pay button: returns the success URL or raises the card's error."""
    session = _open(ctx, session_id)
    data = session["_subscription_data"]
    trial = data.get("trial_period_days")
    # With payment_method_collection=if_required a trial can start with no card at all.
    skip_card = (
        not card_number.strip()
        and trial
        and (session["payment_method_collection"] == "if_required")
    )
    if not skip_card and card_for(card_number).behaviour == FAILS_CHARGES and not trial:
        raise card_declined("Your card was declined.", "generic_decline")
    if session["customer"]:
        customer = ctx.fetch("customer", session["customer"])
    else:
        customer = create_customer(ctx, {"email": email or session["customer_email"]})
    method = None
    if not skip_card:
        method = attach_card(ctx, customer, card_number, expiry)["id"]
        update_customer(
            ctx, {"invoice_settings": {"default_payment_method": method}}, customer["id"]
        )

    def complete(sub: dict[str, Any]) -> None:
        change(
            ctx,
            session,
            "checkout.session.completed",
            status="complete",
            customer=customer["id"],
            subscription=sub["id"],
            payment_status="no_payment_required" if trial else "paid",
            customer_details={
                "email": customer["email"] or email,
                "name": None,
                "phone": None,
                "address": None,
                "tax_exempt": "none",
                "tax_ids": [],
                "business_name": None,
                "individual_name": None,
            },
        )

    sub = start_subscription(
        ctx,
        customer,
        session["_line_items"],
        trial_days=trial,
        options={**data, "default_payment_method": method},
        on_created=complete,
    )
    session["invoice"] = sub["latest_invoice"]
    ctx.save(session)
    return str(session["success_url"]).replace("{CHECKOUT_SESSION_ID}", session["id"])


ROUTES = [
    Route("POST", "/v1/checkout/sessions", csp.SessionCreateParams, create),
    Route(
        "GET",
        "/v1/checkout/sessions",
        csp.SessionListParams,
        lister("checkout.session", "/v1/checkout/sessions", "customer", "status", "subscription"),
    ),
    Route(
        "GET", "/v1/checkout/sessions/{}", csp.SessionRetrieveParams, retrieve("checkout.session")
    ),
    Route(
        "GET",
        "/v1/checkout/sessions/{}/line_items",
        csp.SessionListLineItemsParams,
        list_line_items,
    ),
    Route("POST", "/v1/checkout/sessions/{}/expire", csp.SessionExpireParams, expire),
]
EXPANSIONS = {("checkout.session", "line_items"): line_items}
