"""Stripe's billing portal, configured for Tollgate: what customers may change there.

The portal lets a customer do what Tollgate's own pages do not: change the card, keep a billing
address and tax IDs for the invoices, read past invoices. What Tollgate's account page does
(plan changes, cancellation) stays off in the portal unless the operator opts in with
``TOLLGATE_PORTAL_ALLOWS`` (``plan_changes``, ``cancel``, or both), so that a customer meets
one way to change a plan, with Tollgate's rules (docs/billing-portal.md).

``flask stripe setup`` creates Tollgate's configuration once and updates it after; it is found
again by its metadata (Stripe's API can neither delete a configuration nor make one the
account's default, so every portal session names it). In sandbox mode the first portal session
sets it up, as the webhook endpoint is.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from flask import current_app

from app.billing.gateway import GatewayError, gateway
from app.catalog import current_catalog

log = logging.getLogger(__name__)

# The metadata that marks Tollgate's configuration among the account's.
METADATA = {"tollgate": "billing_portal"}
# What TOLLGATE_PORTAL_ALLOWS may name.
OPT_INS = ("plan_changes", "cancel")
# What a customer may change about itself. Not the email: it is the customer's log-in and the
# operator's key to it, and Stripe sends invoices to it.
CUSTOMER_UPDATES = ["address", "name", "tax_id"]
# Stripe lets a configuration offer at most 10 products for subscription updates (API
# reference: features.subscription_update.products).
MAX_PRODUCTS = 10


class PortalSettingError(Exception):
    """The operator's portal settings cannot be carried out; ``str()`` says what to fix."""


@dataclass(frozen=True)
class PortalOptions:
    """What the operator lets customers do in the portal besides the defaults."""

    plan_changes: bool = False
    cancel: bool = False


@dataclass(frozen=True)
class PortalSetup:
    """What ``set_up_portal`` did: the configuration's id and whether it was new."""

    configuration_id: str
    created: bool
    options: PortalOptions


def portal_options(setting: str | None) -> PortalOptions:
    """Read ``TOLLGATE_PORTAL_ALLOWS``: comma-separated opt-ins, empty for none."""
    names = [name.strip() for name in (setting or "").split(",") if name.strip()]
    unknown = [name for name in names if name not in OPT_INS]
    if unknown:
        raise PortalSettingError(
            f"TOLLGATE_PORTAL_ALLOWS names {', '.join(repr(n) for n in unknown)}, which is not "
            f"an opt-in; give {' and/or '.join(OPT_INS)}, comma separated, or nothing."
        )
    return PortalOptions(plan_changes="plan_changes" in names, cancel="cancel" in names)


def configuration_params(options: PortalOptions) -> dict[str, Any]:
    """The configuration Tollgate wants, as Stripe's create and update calls take it."""
    return {
        "features": {
            "customer_update": {"enabled": True, "allowed_updates": CUSTOMER_UPDATES},
            "invoice_history": {"enabled": True},
            "payment_method_update": {"enabled": True},
            "subscription_cancel": (
                # Tollgate's own cancel keeps access to the end of the paid period.
                {"enabled": True, "mode": "at_period_end", "proration_behavior": "none"}
                if options.cancel
                else {"enabled": False}
            ),
            "subscription_update": _plan_changes()
            if options.plan_changes
            else {
                "enabled": False,
                "products": "",
            },
        },
        "default_return_url": _account_url(),
        "metadata": METADATA,
    }


def _plan_changes() -> dict[str, Any]:
    """Plan changes as Tollgate makes them: upgrades invoiced at once, downgrades and shorter
    intervals at the end of the period; between the paid plans Checkout sells (free and
    in-arrears plans change only on Tollgate's account page)."""
    plans = [
        p for p in current_catalog().plans.values() if not p.is_free and p.billing == "in_advance"
    ]
    prices = gateway().prices_by_lookup_key([plan.key for plan in plans])
    missing = [plan.key for plan in plans if plan.key not in prices]
    if missing:
        raise PortalSettingError(
            f"Stripe has no price for {', '.join(missing)}: run `flask catalog sync` first."
        )
    products: dict[str, list[str]] = {}
    for plan in plans:
        price = prices[plan.key]
        products.setdefault(str(price.product), []).append(price.id)
    if len(products) > MAX_PRODUCTS:
        raise PortalSettingError(
            f"The catalog's paid plans are {len(products)} Stripe products; the portal offers "
            f"plan changes between at most {MAX_PRODUCTS}. Leave plan_changes out of "
            "TOLLGATE_PORTAL_ALLOWS."
        )
    return {
        "enabled": True,
        "default_allowed_updates": ["price"],
        "products": [{"product": product, "prices": ids} for product, ids in products.items()],
        "proration_behavior": "always_invoice",
        "schedule_at_period_end": {
            "conditions": [{"type": "decreasing_item_amount"}, {"type": "shortening_interval"}]
        },
    }


def _account_url() -> str:
    # Built from the URL map, since commands run without a request (as webhooks/endpoint.py).
    path = current_app.url_map.bind("tollgate").build("billing.account")
    return str(current_app.config["TOLLGATE_BASE_URL"]).rstrip("/") + path


def set_up_portal() -> PortalSetup:
    """Create Tollgate's portal configuration, or bring the one made before up to date. Every
    setting is checked before Stripe is asked to change anything; a refusal changes nothing."""
    options = portal_options(current_app.config.get("TOLLGATE_PORTAL_ALLOWS"))
    params = configuration_params(options)
    found = _our_configuration()
    created = found is None
    if found is not None:
        gateway().update_portal_configuration(found, params)
    else:
        # The key names the configuration asked for: two first runs at once make one.
        digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:24]
        found = (
            gateway()
            .create_portal_configuration(params, f"tollgate-portal-configuration-{digest}")
            .id
        )
    current_app.extensions[_CACHE] = found
    return PortalSetup(found, created, options)


def _our_configuration() -> str | None:
    """The id of Tollgate's configuration in Stripe, found by its metadata (the oldest, should
    concurrent first runs have made two)."""
    ours = [c for c in gateway().portal_configurations() if _is_ours(c.metadata)]
    return min(ours, key=lambda c: c.created).id if ours else None


def _is_ours(metadata: Any) -> bool:
    found = metadata.to_dict() if metadata else {}
    return all(found.get(key) == value for key, value in METADATA.items())


# Where a process keeps the id once found: Stripe's API offers no way to make a configuration
# the account's default, so every session names it, and updates keep the id.
_CACHE = "tollgate.portal_configuration"


def session_configuration() -> str | None:
    """The configuration a portal session names: Tollgate's, found once per process.

    In sandbox mode a missing one is set up now, as the webhook endpoint is. Against Stripe it
    is ``flask stripe setup``'s to make; until then, or when the key may not read
    configurations, sessions use the account's default configuration, and the log says why.
    """
    cached: str | None = current_app.extensions.get(_CACHE)
    if cached is not None:
        return cached
    try:
        found = _our_configuration()
        if found is None and current_app.extensions["tollgate.stripe.sandbox_client"] is not None:
            found = set_up_portal().configuration_id
    except (PortalSettingError, GatewayError) as exc:
        log.error("Tollgate's billing-portal configuration could not be read or made: %s", exc)
        return None
    if found is None:
        log.warning(
            "Stripe has no billing-portal configuration of Tollgate's: the portal offers what "
            "the account's default configuration does. Run `flask stripe setup`."
        )
        return None
    current_app.extensions[_CACHE] = found
    return found


def open_portal_session(stripe_customer_id: str, return_url: str) -> str:
    """The URL of a new portal session for the customer, on Tollgate's configuration."""
    session = gateway().open_portal(stripe_customer_id, return_url, session_configuration())
    return str(session.url)
