"""Start a plan, and the pages Stripe Checkout returns the buyer to."""

from __future__ import annotations

import logging

from flask import (
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from app.accounts.models import Customer
from app.billing.checkout import (
    AlreadySubscribed,
    CheckoutOutcome,
    CheckoutUrls,
    confirm_checkout,
    start_plan,
)
from app.billing.gateway import GatewayError
from app.billing.routes import bp
from app.catalog import current_catalog
from app.extensions import db

log = logging.getLogger(__name__)


# Stripe's code for an id it has no object for: a checkout that does not exist.
NO_SUCH_OBJECT = "resource_missing"


def _confirm_or_wait(customer: Customer | None, session_id: str, not_found: str) -> CheckoutOutcome:
    """Apply the checkout Stripe returned the buyer with, or abort with ``not_found``.

    When Stripe does not answer about a checkout that exists, the buyer may well have paid: the
    page waits and asks again (a webhook may apply the checkout meanwhile) rather than send the
    buyer back to pricing to pay a second time.
    """
    if not session_id.startswith("cs_"):
        abort(400, description="This page needs the checkout session Stripe returned you with.")
    try:
        outcome = confirm_checkout(customer, session_id)
        db.session.commit()
    except GatewayError as exc:
        db.session.rollback()
        if exc.code == NO_SUCH_OBJECT:
            abort(404, description=not_found)
        log.warning("Checkout %s could not be read back yet: %s", session_id, exc.code)
        return CheckoutOutcome("pending", None)
    if outcome is None:
        abort(404, description=not_found)
    return outcome


def begin_plan(customer: Customer, plan_key: str) -> Response:
    """Send the customer on to subscribe to ``plan_key``: Checkout, or the account page."""
    plan = current_catalog().plan(plan_key)
    if plan is None:
        abort(
            404, description=f"There is no plan called “{plan_key}”. Pick one on the pricing page."
        )
    urls = CheckoutUrls(
        # Stripe fills in {CHECKOUT_SESSION_ID}; url_for would escape the braces.
        success=url_for("billing.checkout_success", _external=True)
        + "?session_id={CHECKOUT_SESSION_ID}",
        cancel=url_for("billing.checkout_cancel", plan=plan.key, _external=True),
    )
    try:
        checkout_url = start_plan(customer, plan, urls)
        db.session.commit()
    except AlreadySubscribed as exc:
        db.session.rollback()
        flash(
            f"You already have a subscription ({exc.subscription.plan_key}). "
            "Change your plan from your account.",
            "info",
        )
        return redirect(url_for("billing.account"))
    except GatewayError as exc:
        db.session.rollback()
        log.warning("Starting %s for %s failed: %s", plan.key, customer.reference_id, exc.code)
        flash(str(exc), "error")
        return redirect(url_for("billing.pricing", interval=plan.interval))
    if checkout_url is None:
        flash(f"You are now on the {plan.name} plan.", "success")
        return redirect(url_for("billing.account"))
    return redirect(checkout_url, code=303)


@bp.post("/checkout/<plan_key>")
@login_required
def start_checkout(plan_key: str) -> Response:
    """The Start trial / Subscribe button of a logged-in customer."""
    return begin_plan(current_user.customer, plan_key)


@bp.route("/checkout/success")
@login_required
def checkout_success() -> Response | tuple[str, int] | str:
    """Where Checkout returns to: apply the session now, even if the webhook is late."""
    session_id = request.args.get("session_id", "")
    outcome = _confirm_or_wait(
        current_user.customer,
        session_id,
        "We could not find that checkout. Start again from the pricing page.",
    )
    polling = request.headers.get("HX-Request") == "true"
    if polling and outcome.state == "active":
        response = make_response("", 204)
        response.headers["HX-Redirect"] = url_for("billing.account")
        return response
    template = "billing/_checkout_status.html" if polling else "billing/checkout_success.html"
    plan = current_catalog().plan(outcome.subscription.plan_key) if outcome.subscription else None
    response = make_response(
        render_template(template, outcome=outcome, plan=plan, session_id=session_id)
    )
    response.vary.add("HX-Request")
    return response


@bp.route("/checkout/done")
def checkout_done() -> str:
    """Where Checkout returns buyers that the operator's product sent there through the API."""
    outcome = _confirm_or_wait(
        None, request.args.get("session_id", ""), "We could not find that checkout."
    )
    return render_template("billing/checkout_done.html", state=outcome.state)


@bp.route("/checkout/cancel")
def checkout_cancel() -> Response:
    """Where Checkout's back link leads: nothing was bought."""
    flash(
        "Checkout was cancelled and you have not been charged. Pick a plan whenever you are ready.",
        "info",
    )
    plan = current_catalog().plan(request.args.get("plan", ""))
    return redirect(url_for("billing.pricing", interval=plan.interval if plan else "month"))
