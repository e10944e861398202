"""The pricing page and the customer's account page."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, make_response, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from app.accounts.mirror import SubscriptionStatus
from app.billing.account import open_invoice
from app.billing.checkout import live_subscription
from app.billing.pricing import INTERVALS, plan_cards
from app.catalog import current_catalog

bp = Blueprint("billing", __name__)


@bp.route("/")
def index() -> Response:
    """The home page is the pricing page."""
    return redirect(url_for("billing.pricing"))


@bp.route("/pricing")
def pricing() -> Response:
    """Plans side by side; the interval toggle swaps the cards with htmx or reloads without it."""
    interval = request.args.get("interval", "month")
    if interval not in INTERVALS:
        abort(400, description=f"Unknown billing interval “{interval}”: choose month or year.")
    cards = plan_cards(current_catalog(), interval)
    subscription = (
        live_subscription(current_user.customer) if current_user.is_authenticated else None
    )
    # A history restore after a cache miss asks for the whole page, even though htmx sent it.
    is_fragment = request.headers.get("HX-Request") == "true" and not request.headers.get(
        "HX-History-Restore-Request"
    )
    template = "billing/_pricing_table.html" if is_fragment else "billing/pricing.html"
    response = make_response(
        render_template(
            template,
            cards=cards,
            interval=interval,
            current_plan_key=subscription.plan_key if subscription else None,
        )
    )
    response.vary.add("HX-Request")
    return response


@bp.app_context_processor
def inject_billing_banner() -> dict[str, Any]:
    """A past-due customer sees, on every page, a link to pay the open invoice."""
    if not current_user.is_authenticated:
        return {}
    subscription = live_subscription(current_user.customer)
    if subscription is None or subscription.status is not SubscriptionStatus.PAST_DUE:
        return {}
    return {"past_due_invoice": open_invoice(current_user.customer) or True}
