"""The account page's actions: change plan, cancel, resume, undo, and the billing portal.

Every action is a POST with a CSRF token. With htmx the answer is the account panel, swapped in
place; without JavaScript the same form redirects back to /account with a message.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import abort, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from app.accounts.mirror import Subscription
from app.billing.account import account_overview
from app.billing.cancellation import cancel_at_period_end, cancel_now, resume
from app.billing.changes import (
    ChangeError,
    ChangeKind,
    apply_upgrade,
    change_kind,
    intent_or_new,
    plan_of,
    preview_upgrade,
    schedule_downgrade,
    undo_scheduled_change,
)
from app.billing.checkout import ensure_stripe_customer, live_subscription
from app.billing.checkout_routes import begin_plan
from app.billing.gateway import GatewayError
from app.billing.portal import open_portal_session
from app.billing.routes import bp
from app.catalog import Plan, current_catalog
from app.extensions import db


def is_htmx() -> bool:
    """Whether htmx sent the request (and wants a fragment back)."""
    return request.headers.get("HX-Request") == "true"


def render_account(confirm: dict[str, object] | None = None, status: int = 200) -> Response:
    """The account page, or only its panel for htmx; ``confirm`` adds a confirmation box."""
    customer = current_user.customer
    panel_only = is_htmx()
    template = "billing/_account_panel.html" if panel_only else "billing/account.html"
    response = make_response(
        render_template(
            template,
            customer=customer,
            overview=account_overview(customer),
            confirm=confirm,
            panel_only=panel_only,
        ),
        status,
    )
    response.vary.add("HX-Request")
    return response


def _subscription() -> Subscription:
    subscription = live_subscription(current_user.customer)
    if subscription is None:
        abort(404, description="You have no plan to change. Pick one on the pricing page.")
    return subscription


def _target(plan_key: str) -> Plan:
    plan = current_catalog().plan(plan_key)
    if plan is None:
        abort(404, description=f"There is no plan called “{plan_key}”.")
    return plan


def _intent() -> str:
    """The click this request carries out: the form's intent, so a double submit is one change."""
    return intent_or_new(request.form.get("intent"))


def _act(action: Callable[[], object], done: str) -> Response:
    """Run one change, commit it, and show the result; a refusal changes nothing."""
    try:
        action()
        db.session.commit()
        flash(done, "success")
    except (ChangeError, GatewayError) as exc:
        db.session.rollback()
        flash(str(exc), "error")
        if is_htmx():
            return render_account(status=200)
    if is_htmx():
        return render_account()
    return redirect(url_for("billing.account"))


@bp.route("/account")
@login_required
def account() -> Response:
    """The logged-in customer's own account."""
    return render_account()


@bp.get("/account/plan/<plan_key>")
@login_required
def confirm_plan_change(plan_key: str) -> Response:
    """The step before a change: what it costs now (upgrade) or when it applies (downgrade)."""
    subscription, target = _subscription(), _target(plan_key)
    try:
        current = plan_of(subscription)
        if current.is_free:
            return render_account({"kind": "checkout", "plan": target})
        if change_kind(current, target) is ChangeKind.UPGRADE:
            preview = preview_upgrade(subscription, target)
            return render_account(
                {
                    "kind": "upgrade",
                    "plan": target,
                    "preview": preview,
                    "subscription": subscription,
                }
            )
    except (ChangeError, GatewayError) as exc:
        flash(str(exc), "error")
        return render_account(status=200 if is_htmx() else 409)
    return render_account(
        {"kind": "downgrade", "plan": target, "subscription": subscription, "current": current}
    )


@bp.post("/account/plan/<plan_key>")
@login_required
def change_plan(plan_key: str) -> Response:
    """Apply a confirmed change: an upgrade now at the previewed price, a downgrade later."""
    subscription, target = _subscription(), _target(plan_key)
    current = current_catalog().plan(subscription.plan_key)
    if current is not None and current.is_free:
        return begin_plan(current_user.customer, target.key)
    if current is not None and change_kind(current, target) is ChangeKind.UPGRADE:
        proration_date = request.form.get("proration_date", "")
        if not proration_date.isdigit():
            abort(400, description="Confirm the upgrade from its preview first.")
        return _act(
            lambda: apply_upgrade(subscription, target, int(proration_date), _intent()),
            f"You are now on the {target.name} plan.",
        )
    return _act(
        lambda: schedule_downgrade(subscription, target, _intent()),
        f"Your plan changes to {target.name} at the end of the current period.",
    )


@bp.post("/account/plan/undo")
@login_required
def undo_plan_change() -> Response:
    """Keep the current plan: drop the scheduled change."""
    subscription = _subscription()
    return _act(lambda: undo_scheduled_change(subscription), "You keep your current plan.")


@bp.get("/account/cancel")
@login_required
def confirm_cancel() -> Response:
    """The confirmation step of cancelling at once."""
    return render_account({"kind": "cancel_now", "subscription": _subscription()})


@bp.post("/account/cancel")
@login_required
def cancel() -> Response:
    """Cancel at the end of the period, or at once after the confirmation step."""
    subscription = _subscription()
    mode = request.form.get("mode", "")
    if mode == "period_end":
        return _act(
            lambda: cancel_at_period_end(subscription, _intent()),
            "Your plan will end with the current period. You can resume it until then.",
        )
    if mode == "now" and request.form.get("confirm") == "yes":
        return _act(lambda: cancel_now(subscription), "Your plan is cancelled.")
    abort(400, description="Choose how to cancel: at the end of the period, or now.")


@bp.post("/account/resume")
@login_required
def resume_plan() -> Response:
    """Undo a cancellation at period end."""
    subscription = _subscription()
    return _act(lambda: resume(subscription, _intent()), "Your plan will renew as before.")


@bp.post("/account/billing-portal")
@login_required
def billing_portal() -> Response:
    """Stripe's billing portal, on Tollgate's configuration: card, billing address, tax IDs,
    invoices (portal.py)."""
    try:
        stripe_customer_id = ensure_stripe_customer(current_user.customer)
        db.session.commit()
        portal_url = open_portal_session(
            stripe_customer_id, url_for("billing.account", _external=True)
        )
    except GatewayError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("billing.account"))
    return redirect(portal_url, code=303)
