"""What an operator does to a customer from its page: each a plain form with a CSRF token, a
reason and a confirmation box, written to the audit log (actions.py).

A form that does not validate, a change the rules refuse and an error from Stripe all show the
page again with the reason beside the form, and write nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time

from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response as BaseResponse

from app.accounts.mirror import Subscription
from app.accounts.models import Customer
from app.backoffice.actions import (
    WouldOverdraw,
    adjust_credits,
    change_subscription,
    grant_promotional_credits,
    resync_customer,
)
from app.backoffice.customer_routes import (
    action_forms,
    catalog_pools,
    customer_or_404,
    customer_view,
)
from app.backoffice.forms import ChangePlanForm
from app.backoffice.routes import bp
from app.billing.cancellation import cancel_at_period_end, cancel_now, resume
from app.billing.changes import (
    ChangeError,
    ChangeKind,
    apply_upgrade,
    change_kind,
    intent_or_new,
    plan_of,
    schedule_downgrade,
)
from app.billing.checkout import live_subscription
from app.billing.gateway import GatewayError
from app.catalog import current_catalog
from app.clock import now, timestamp
from app.extensions import db

Page = BaseResponse | tuple[str, int]


def _again(found: Customer, name: str, form: FlaskForm, refusal: str | None = None) -> Page:
    """The page again, writing nothing: the posted form with its errors beside its fields,
    and at the top why the action was not done (the form's errors, or ``refusal``: a rule or
    Stripe refused it)."""
    db.session.rollback()
    errors = [error for field in form for error in field.errors]
    view = customer_view(found, refusal or " ".join(errors), **{name: form})
    return render_template("backoffice/customer.html", **view), 409 if refusal else 400


def _done(found: Customer, message: str) -> BaseResponse:
    db.session.commit()
    flash(message, "success")
    return redirect(url_for("backoffice.customer", reference_id=found.reference_id))


def _form(found: Customer, name: str) -> FlaskForm:
    """The posted form, with the choices the page gave it."""
    return action_forms(found, live_subscription(found))[name]


@bp.post("/customers/<reference_id>/credits")
def grant(reference_id: str) -> Page:
    """Grant credits with a reason; a form that does not validate writes nothing."""
    found = customer_or_404(reference_id)
    form = _form(found, "form")
    valid = form.validate_on_submit()
    expires_on = form.expires_on.data
    if expires_on is not None and expires_on <= now().date():
        form.expires_on.errors = [*form.expires_on.errors, "Choose a date after today."]
        valid = False
    if not valid:
        return _again(found, "form", form)
    grant_promotional_credits(
        current_user,
        found,
        pool_key=form.pool.data,
        denomination=catalog_pools()[form.pool.data],
        amount=form.amount.data,
        reason=form.reason.data.strip(),
        expires_at=datetime.combine(expires_on, time.max, UTC) if expires_on else None,
    )
    return _done(found, f"Granted {form.amount.data:,} to {form.pool.data}.")


@bp.post("/customers/<reference_id>/credits/adjust")
def adjust(reference_id: str) -> Page:
    """Add or remove credits with a reason; a removal never overdraws the pool."""
    found = customer_or_404(reference_id)
    form = _form(found, "adjust_form")
    if not form.validate_on_submit():
        return _again(found, "adjust_form", form)
    pool_key, amount = form.pool.data, form.amount.data
    try:
        adjust_credits(
            current_user,
            found,
            pool_key=pool_key,
            denomination=catalog_pools()[pool_key],
            amount=amount,
            reason=form.reason.data.strip(),
        )
    except WouldOverdraw as exc:
        db.session.rollback()
        form.amount.errors = [*form.amount.errors, str(exc)]
        return _again(found, "adjust_form", form)
    verb = "Added" if amount > 0 else "Removed"
    return _done(found, f"{verb} {abs(amount):,} {'to' if amount > 0 else 'from'} {pool_key}.")


@bp.post("/customers/<reference_id>/plan")
def change_plan(reference_id: str) -> Page:
    """Change the plan as the customer would: an upgrade now, prorated; a downgrade at the end
    of the period."""
    found = customer_or_404(reference_id)
    form = _form(found, "change_form")
    assert isinstance(form, ChangePlanForm)
    subscription = live_subscription(found)
    if subscription is None or not form.validate_on_submit():
        return _again(found, "change_form", form, None if subscription else "There is no plan.")
    target = current_catalog().plan(form.plan.data)
    assert target is not None  # a choice of the form
    intent = intent_or_new(form.intent.data)
    try:
        upgrade = change_kind(plan_of(subscription), target) is ChangeKind.UPGRADE
    except ChangeError as exc:
        return _again(found, "change_form", form, str(exc))
    if upgrade:
        return _in_stripe(
            found,
            ("change_form", form, "change_plan"),
            lambda: apply_upgrade(subscription, target, timestamp(), intent),
            f"Now on {target.name}, prorated and invoiced now.",
        )
    return _in_stripe(
        found,
        ("change_form", form, "change_plan"),
        lambda: schedule_downgrade(subscription, target, intent),
        f"Changes to {target.name} at the end of the period.",
    )


@bp.post("/customers/<reference_id>/cancel")
def cancel(reference_id: str) -> Page:
    """Cancel at the end of the period, or now."""
    found = customer_or_404(reference_id)
    form = _form(found, "cancel_form")
    subscription = live_subscription(found)
    if subscription is None or not form.validate_on_submit():
        return _again(found, "cancel_form", form, None if subscription else "There is no plan.")
    intent = intent_or_new(form.intent.data)
    if form.mode.data == "now":
        return _in_stripe(
            found,
            ("cancel_form", form, "cancel_now"),
            lambda: cancel_now(subscription),
            "Cancelled now.",
        )
    return _in_stripe(
        found,
        ("cancel_form", form, "cancel_at_period_end"),
        lambda: cancel_at_period_end(subscription, intent),
        "The plan ends with the current period.",
    )


@bp.post("/customers/<reference_id>/resume")
def resume_plan(reference_id: str) -> Page:
    """Undo a cancellation at period end."""
    found = customer_or_404(reference_id)
    form = _form(found, "resume_form")
    subscription = live_subscription(found)
    if subscription is None or not form.validate_on_submit():
        return _again(found, "resume_form", form, None if subscription else "There is no plan.")
    intent = intent_or_new(form.intent.data)
    return _in_stripe(
        found,
        ("resume_form", form, "resume"),
        lambda: resume(subscription, intent),
        "The plan renews as before.",
    )


@bp.post("/customers/<reference_id>/resync")
def resync(reference_id: str) -> Page:
    """Read the customer whole from Stripe again and mirror it."""
    found = customer_or_404(reference_id)
    form = _form(found, "resync_form")
    if found.stripe_customer_id is None:
        return _again(found, "resync_form", form, "This customer has no Stripe customer yet.")
    if not form.validate_on_submit():
        return _again(found, "resync_form", form)
    try:
        differences = resync_customer(current_user, found, form.reason.data.strip())
    except GatewayError as exc:
        return _again(found, "resync_form", form, _stripe_error(exc))
    return _done(
        found,
        f"Re-synced from Stripe: {differences} difference{'s' if differences != 1 else ''} "
        "repaired.",
    )


def _in_stripe(
    found: Customer,
    posted: tuple[str, FlaskForm, str],
    change: Callable[[], Subscription],
    done: str,
) -> Page:
    """Make a change in Stripe on the customer's behalf, with its audit entry; a refusal or
    Stripe's error is shown beside the form and nothing is written. ``posted``: the form's
    name on the page, the form, and the action the audit log names."""
    name, form, action = posted
    subscription = live_subscription(found)
    assert subscription is not None
    try:
        change_subscription(
            current_user,
            found,
            subscription,
            action=action,
            reason=form.reason.data.strip(),
            change=change,
        )
    except ChangeError as exc:
        return _again(found, name, form, str(exc))
    except GatewayError as exc:
        return _again(found, name, form, _stripe_error(exc))
    return _done(found, done)


def _stripe_error(exc: GatewayError) -> str:
    return f"Stripe refused or did not answer, so nothing changed: {exc.detail}"
