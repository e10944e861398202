"""The customer portal: its configurations, its sessions, and what a customer does on its page.

A configuration says what the portal lets a customer do (API reference: the Customer portal
configuration object); a session opens the portal for one customer with one configuration,
the account's default one unless the session names another. The page (web.py) offers only what
the session's configuration enables, and each change emits the events Stripe emits for it.
"""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import urlsplit

import stripe.params.billing_portal as psp

from ..context import Ctx, snapshot
from ..errors import StripeError, missing_parameter
from ..router import Route
from ..shapes import skeleton
from ..store import new_id
from .catalog import update_customer
from .common import assign, change, lister, refuse_unsupported, retrieve
from .lifecycle import attempt_payment
from .payments import attach_card
from .subscriptions import update as update_subscription
from .tax_ids import add_tax_id, remove_tax_id, tax_ids_of

# What each feature is when a configuration does not set it: the fields of Stripe's published
# configuration object, with everything off.
FEATURE_DEFAULTS: dict[str, dict[str, Any]] = {
    "customer_update": {"allowed_updates": [], "enabled": False},
    "invoice_history": {"enabled": False},
    "payment_method_update": {"enabled": False, "payment_method_configuration": None},
    "subscription_cancel": {
        "cancellation_reason": {"enabled": False, "options": []},
        "enabled": False,
        "mode": "at_period_end",
        "proration_behavior": "none",
    },
    "subscription_update": {
        "billing_cycle_anchor": None,
        "default_allowed_updates": [],
        "enabled": False,
        "proration_behavior": "none",
        "schedule_at_period_end": {"conditions": []},
        "trial_update_behavior": "end_trial",
    },
}
# The account's default configuration, which Stripe keeps from the Dashboard's portal settings
# (Settings, Billing, Customer portal): the sandbox makes it on first need with what the
# Dashboard offers out of the box.
_DASHBOARD_DEFAULT = {
    "customer_update": {"allowed_updates": ["email", "address", "tax_id"], "enabled": True},
    "invoice_history": {"enabled": True},
    "payment_method_update": {"enabled": True},
    "subscription_cancel": {"enabled": True, "mode": "at_period_end"},
}
CUSTOMER_UPDATES = ("address", "email", "name", "phone", "shipping", "tax_id")
_SUBSCRIPTION_UPDATES = ("price", "promotion_code", "quantity")
_CANCELLATION_REASONS = (
    "customer_service",
    "low_quality",
    "missing_features",
    "other",
    "switched_service",
    "too_complex",
    "too_expensive",
    "unused",
)
_MAX_PRODUCTS = 10
_FIELDS = ("default_return_url", "metadata", "name")


def create_configuration(
    ctx: Ctx, params: dict[str, Any], *, is_default: bool = False
) -> dict[str, Any]:
    """POST /v1/billing_portal/configurations."""
    refuse_unsupported(params, ("business_profile", "features", *_FIELDS))
    if "features" not in params:
        raise missing_parameter("features")
    configuration = skeleton("billing_portal.configuration", new_id("bpc", 24), ctx.now())
    configuration.update(
        active=True,
        business_profile={
            "headline": None,
            "privacy_policy_url": None,
            "terms_of_service_url": None,
        },
        features=copy.deepcopy(FEATURE_DEFAULTS),
        is_default=is_default,
        login_page={"enabled": False, "url": None},
        metadata={},
    )
    _apply(ctx, configuration, params)
    configuration["updated"] = configuration["created"]
    ctx.save(configuration)
    ctx.emit("billing_portal.configuration.created", configuration)
    return configuration


def update_configuration(ctx: Ctx, params: dict[str, Any], configuration_id: str) -> dict[str, Any]:
    """POST /v1/billing_portal/configurations/{id}: what is sent replaces what it names."""
    refuse_unsupported(params, ("active", "business_profile", "features", *_FIELDS))
    configuration = ctx.fetch("billing_portal.configuration", configuration_id)
    if params.get("active") is False and configuration["is_default"]:
        raise StripeError("The default configuration cannot be deactivated.", param="active")
    updated = snapshot(configuration)
    _apply(ctx, updated, params)
    if "active" in params:
        updated["active"] = params["active"]
    if updated != configuration:
        updated["updated"] = ctx.now()
    return change(ctx, configuration, "billing_portal.configuration.updated", **updated)


def _apply(ctx: Ctx, configuration: dict[str, Any], params: dict[str, Any]) -> None:
    """Check and set what a create or an update sends; nothing is kept if anything is wrong."""
    for name in ("default_return_url",):
        if params.get(name):
            _check_url(params[name], name)
    assign(configuration, params, _FIELDS)
    profile = params.get("business_profile") or {}
    for name, value in profile.items():
        if name != "headline" and value:
            _check_url(value, f"business_profile[{name}]")
        configuration["business_profile"][name] = value or None
    features = params.get("features", {})
    refuse_unsupported(features, FEATURE_DEFAULTS)
    for name, sent in features.items():
        configuration["features"][name] = _feature(
            ctx, name, {**configuration["features"][name], **sent}
        )


def _feature(ctx: Ctx, name: str, feature: dict[str, Any]) -> dict[str, Any]:
    """A feature as sent over what it was, checked as Stripe checks it."""
    where = f"features[{name}]"
    if name == "customer_update":
        feature["allowed_updates"] = feature["allowed_updates"] or []
        _check_values(feature["allowed_updates"], CUSTOMER_UPDATES, f"{where}[allowed_updates]")
    if name == "subscription_cancel":
        reason = {**FEATURE_DEFAULTS[name]["cancellation_reason"], **feature["cancellation_reason"]}
        reason["options"] = reason["options"] or []
        _check_values(reason["options"], _CANCELLATION_REASONS, f"{where}[cancellation_reason]")
        if reason["enabled"] and not reason["options"]:
            raise StripeError(
                "Cancellation reasons need at least one option.",
                param=f"{where}[cancellation_reason][options]",
            )
        feature["cancellation_reason"] = reason
        # API reference: `create_prorations` only with `mode=immediately`; `always_invoice`
        # is refused.
        if feature["proration_behavior"] == "always_invoice" or (
            feature["proration_behavior"] == "create_prorations"
            and feature["mode"] != "immediately"
        ):
            raise StripeError(
                f"proration_behavior={feature['proration_behavior']} cannot be used with "
                f"mode={feature['mode']}.",
                param=f"{where}[proration_behavior]",
            )
    if name == "subscription_update":
        feature["default_allowed_updates"] = feature["default_allowed_updates"] or []
        _check_values(
            feature["default_allowed_updates"],
            _SUBSCRIPTION_UPDATES,
            f"{where}[default_allowed_updates]",
        )
        feature["products"] = _products(ctx, feature.get("products") or [], where)
        if feature["enabled"] and not feature["products"]:
            raise StripeError(
                "Subscription updates need at least one product whose prices customers may "
                "switch between.",
                param=f"{where}[products]",
            )
        if not feature["products"]:
            del feature["products"]  # Stripe's sample has no `products` when none are set
    return feature


def _products(ctx: Ctx, products: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    if len(products) > _MAX_PRODUCTS:
        raise StripeError(
            f"At most {_MAX_PRODUCTS} products can support subscription updates.",
            param=f"{where}[products]",
        )
    checked = []
    for index, product in enumerate(products):
        param = f"{where}[products][{index}]"
        ctx.fetch("product", product["product"], f"{param}[product]")
        for price_id in product["prices"]:
            price = ctx.fetch("price", price_id, f"{param}[prices]")
            if price["product"] != product["product"] or price["recurring"] is None:
                raise StripeError(
                    f"Price {price_id} is not a recurring price of product {product['product']}.",
                    param=f"{param}[prices]",
                )
        checked.append(
            {
                "adjustable_quantity": {"enabled": False, "maximum": None, "minimum": 1},
                "prices": list(product["prices"]),
                "product": product["product"],
            }
        )
    return checked


def _check_values(values: list[str], allowed: tuple[str, ...], param: str) -> None:
    for value in values:
        if value not in allowed:
            raise StripeError(f"Invalid {param}: must be one of {', '.join(allowed)}", param=param)


def _check_url(value: str, param: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise StripeError(f"Invalid URL: {value}", code="url_invalid", param=param)


def default_configuration(ctx: Ctx) -> dict[str, Any]:
    """The account's default configuration, made on first need."""
    for configuration in ctx.store.all("billing_portal.configuration"):
        if configuration["is_default"]:
            return configuration
    return create_configuration(
        ctx, {"features": copy.deepcopy(_DASHBOARD_DEFAULT)}, is_default=True
    )


def create_session(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/billing_portal/sessions."""
    refuse_unsupported(params, ("configuration", "customer", "return_url", "locale"))
    customer = ctx.fetch("customer", params.get("customer", ""), "customer")
    if "configuration" in params:
        configuration = ctx.fetch(
            "billing_portal.configuration", params["configuration"], "configuration"
        )
    else:
        configuration = default_configuration(ctx)
    if not configuration["active"]:
        raise StripeError(
            f"The configuration {configuration['id']} is not active.", param="configuration"
        )
    # Without either, the portal has no link back.
    return_url = params.get("return_url") or configuration["default_return_url"]
    session = skeleton("billing_portal.session", new_id("bps", 24), ctx.now(customer["test_clock"]))
    session.update(
        configuration=configuration["id"],
        customer=customer["id"],
        locale=params.get("locale"),
        return_url=return_url,
        url=f"{ctx.base_url}/sandbox/portal/{session['id']}",
    )
    return ctx.save(session)


def features_of(ctx: Ctx, portal_id: str) -> dict[str, Any]:
    """The features of a portal session's configuration."""
    session = ctx.fetch("billing_portal.session", portal_id)
    features: dict[str, Any] = ctx.fetch("billing_portal.configuration", session["configuration"])[
        "features"
    ]
    return features


def _require(ctx: Ctx, portal_id: str, feature: str, update: str | None = None) -> None:
    found = features_of(ctx, portal_id)[feature]
    if not found["enabled"] or (update is not None and update not in found["allowed_updates"]):
        raise StripeError("This portal does not offer that.", status=403)


def portal_subscriptions(ctx: Ctx, portal_id: str) -> list[dict[str, Any]]:
    """The customer's subscriptions that the portal page lists."""
    session = ctx.fetch("billing_portal.session", portal_id)
    return [
        s
        for s in ctx.store.all("subscription")
        if s["customer"] == session["customer"] and s["status"] != "canceled"
    ]


def portal_view(ctx: Ctx, portal_id: str) -> dict[str, Any]:
    """What the portal page shows: the session, its features, the customer and its things."""
    session = ctx.fetch("billing_portal.session", portal_id)
    customer = ctx.fetch("customer", session["customer"])
    method_id = customer["invoice_settings"]["default_payment_method"]
    invoices = [
        i
        for i in ctx.store.all("invoice")
        if i["customer"] == customer["id"] and i["status"] != "draft"
    ][::-1]
    return {
        "session": session,
        "features": features_of(ctx, portal_id),
        "customer": customer,
        "card": ctx.store.get(method_id) if method_id else None,
        "tax_ids": tax_ids_of(ctx, customer["id"]),
        "invoices": invoices,
        "subscriptions": portal_subscriptions(ctx, portal_id),
    }


def portal_change_card(ctx: Ctx, portal_id: str, number: str, expiry: str) -> None:
    """Portal: a new default card for the customer and its subscriptions; retry what's due."""
    _require(ctx, portal_id, "payment_method_update")
    session = ctx.fetch("billing_portal.session", portal_id)
    customer = ctx.fetch("customer", session["customer"])
    method = attach_card(ctx, customer, number, expiry)["id"]
    update_customer(ctx, {"invoice_settings": {"default_payment_method": method}}, customer["id"])
    for sub in portal_subscriptions(ctx, portal_id):
        update_subscription(ctx, {"default_payment_method": method}, sub["id"])
        for invoice in ctx.store.all("invoice"):
            if (
                invoice["status"] == "open"
                and invoice["parent"]["subscription_details"]["subscription"] == sub["id"]
            ):
                attempt_payment(ctx, invoice)


def portal_set_cancel(ctx: Ctx, portal_id: str, sub_id: str, cancel: bool) -> None:
    """Portal: cancel at period end, or take that back."""
    _require(ctx, portal_id, "subscription_cancel")
    if sub_id not in {s["id"] for s in portal_subscriptions(ctx, portal_id)}:
        raise StripeError("This subscription does not belong to the portal's customer.")
    update_subscription(ctx, {"cancel_at_period_end": cancel}, sub_id)


def portal_update_details(ctx: Ctx, portal_id: str, form: dict[str, str]) -> None:
    """Portal: the customer's name, email and billing address, as far as the configuration
    allows each (one `customer.updated`)."""
    session = ctx.fetch("billing_portal.session", portal_id)
    allowed = features_of(ctx, portal_id)["customer_update"]
    params: dict[str, Any] = {}
    for field in ("name", "email"):
        if field in form and _allows(allowed, field):
            params[field] = form[field].strip()
    if _allows(allowed, "address") and "country" in form:
        address = {k: form.get(k, "").strip() or None for k in ADDRESS_FORM}
        if not address["line1"] or not address["country"]:
            raise StripeError("An address needs at least its first line and its country.")
        address["country"] = address["country"].upper()
        if len(address["country"]) != 2:
            raise StripeError("Give the country as its two-letter code, e.g. DE or US.")
        params["address"] = address
    if not params:
        raise StripeError("This portal does not offer that.", status=403)
    update_customer(ctx, params, session["customer"])


ADDRESS_FORM = ("line1", "line2", "city", "state", "postal_code", "country")


def _allows(feature: dict[str, Any], update: str) -> bool:
    return bool(feature["enabled"]) and update in feature["allowed_updates"]


def portal_add_tax_id(ctx: Ctx, portal_id: str, tax_type: str, value: str) -> None:
    """Portal: a new tax ID for the customer."""
    _require(ctx, portal_id, "customer_update", "tax_id")
    session = ctx.fetch("billing_portal.session", portal_id)
    add_tax_id(ctx, session["customer"], tax_type, value)


def portal_remove_tax_id(ctx: Ctx, portal_id: str, tax_id: str) -> None:
    """Portal: remove one of the customer's tax IDs."""
    _require(ctx, portal_id, "customer_update", "tax_id")
    session = ctx.fetch("billing_portal.session", portal_id)
    remove_tax_id(ctx, session["customer"], tax_id)


def portal_change_price(ctx: Ctx, portal_id: str, sub_id: str, price_id: str) -> None:
    """Portal: switch a subscription's plan to another price the configuration offers, with
    its proration behaviour (the sandbox applies it at once)."""
    feature = features_of(ctx, portal_id)["subscription_update"]
    offered = {p for product in feature.get("products", []) for p in product["prices"]}
    if not feature["enabled"] or price_id not in offered:
        raise StripeError("This portal does not offer that.", status=403)
    subscription = next(
        (s for s in portal_subscriptions(ctx, portal_id) if s["id"] == sub_id), None
    )
    if subscription is None:
        raise StripeError("This subscription does not belong to the portal's customer.")
    item = subscription["items"]["data"][0]
    update_subscription(
        ctx,
        {
            "items": [{"id": item["id"], "price": price_id}],
            "proration_behavior": feature["proration_behavior"],
        },
        sub_id,
    )


def portal_action(ctx: Ctx, portal_id: str, form: dict[str, str]) -> str:
    """Carry out what the customer sent from the portal page; what to tell them."""
    action = form.get("action", "")
    if action == "card":
        portal_change_card(ctx, portal_id, form.get("card_number", ""), form.get("expiry", ""))
        return "Your payment method was updated."
    if action in ("cancel", "resume"):
        portal_set_cancel(ctx, portal_id, form.get("subscription", ""), action == "cancel")
        return "Your subscription was updated."
    if action == "details":
        portal_update_details(ctx, portal_id, form)
        return "Your billing information was updated."
    if action == "add_tax_id":
        portal_add_tax_id(ctx, portal_id, form.get("type", ""), form.get("value", ""))
        return "Your tax ID was added."
    if action == "remove_tax_id":
        portal_remove_tax_id(ctx, portal_id, form.get("tax_id", ""))
        return "Your tax ID was removed."
    if action == "change_price":
        portal_change_price(ctx, portal_id, form.get("subscription", ""), form.get("price", ""))
        return "Your plan was updated."
    raise StripeError(f"Unknown portal action “{action}”.")


ROUTES = [
    Route(
        "POST",
        "/v1/billing_portal/configurations",
        psp.ConfigurationCreateParams,
        create_configuration,
    ),
    Route(
        "GET",
        "/v1/billing_portal/configurations",
        psp.ConfigurationListParams,
        lister(
            "billing_portal.configuration",
            "/v1/billing_portal/configurations",
            "active",
            "is_default",
        ),
    ),
    Route(
        "GET",
        "/v1/billing_portal/configurations/{}",
        psp.ConfigurationRetrieveParams,
        retrieve("billing_portal.configuration"),
    ),
    Route(
        "POST",
        "/v1/billing_portal/configurations/{}",
        psp.ConfigurationUpdateParams,
        update_configuration,
    ),
    Route("POST", "/v1/billing_portal/sessions", psp.SessionCreateParams, create_session),
]
