"""Plans, customers and subscriptions over the API; the same services as the account page."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.accounts.api_keys import READ, WRITE
from app.accounts.mirror import NEWEST_FIRST, Subscription
from app.accounts.models import Customer
from app.accounts.services import find_customer, upsert_api_customer
from app.api.errors import ApiError, json_body, parse
from app.api.routes import bp, needs_scope
from app.api.schemas import CustomerIn, PlanChangeIn, SubscriptionIn
from app.api.views import customer_view, plan_view, subscription_view
from app.billing.cancellation import cancel_at_period_end, cancel_now, resume
from app.billing.changes import (
    ChangeError,
    ChangeKind,
    apply_upgrade,
    change_kind,
    check_change,
    intent_or_new,
    plan_of,
    schedule_downgrade,
)
from app.billing.checkout import AlreadySubscribed, CheckoutUrls, ensure_stripe_customer, start_plan
from app.catalog import Plan, current_catalog
from app.clock import timestamp
from app.extensions import db
from app.logs import bind_customer

# What a refused change means for the caller: most are a conflict with the current state.
CHANGE_STATUS = {"unknown_plan": 404, "use_checkout": 409}


def customer_not_found(reference_id: str) -> ApiError:
    """The 404 for a reference id that no customer has."""
    return ApiError(
        404, "customer_not_found", f"No customer with customerReferenceId {reference_id!r}."
    )


def customer_or_404(reference_id: str) -> Customer:
    """The customer with this reference id, or a 404 that says so."""
    bind_customer(reference_id)
    customer = find_customer(reference_id)
    if customer is None:
        raise customer_not_found(reference_id)
    return customer


def plan_or_404(plan_key: str) -> Plan:
    """The catalog plan with this id, or a 404."""
    plan = current_catalog().plan(plan_key)
    if plan is None:
        raise ApiError(404, "plan_not_found", f"No plan {plan_key!r}; GET /plans lists them.")
    return plan


def _subscription_or_404(subscription_id: str) -> Subscription:
    subscription = db.session.scalar(
        select(Subscription).where(Subscription.stripe_subscription_id == subscription_id)
    )
    if subscription is None:
        raise ApiError(404, "subscription_not_found", f"No subscription {subscription_id!r}.")
    return subscription


def _subscriptions_of(customer: Customer) -> list[Subscription]:
    return list(
        db.session.scalars(
            select(Subscription)
            .where(Subscription.customer_id == customer.id)
            .order_by(*NEWEST_FIRST)
        )
    )


def _ok(data: Any, status: int = 200) -> tuple[Response, int]:
    return jsonify({"data": data}), status


def _intent() -> str:
    """The caller's Idempotency-Key names the operation (a retry repeats it); else a new one."""
    return intent_or_new(request.headers.get("Idempotency-Key"))


def _change(action: Any) -> Subscription:
    try:
        subscription: Subscription = action()
    except ChangeError as exc:
        raise ApiError(CHANGE_STATUS.get(exc.code, 409), exc.code, str(exc)) from None
    db.session.commit()
    return subscription


@bp.get("/plans")
@needs_scope(READ)
def list_plans() -> tuple[Response, int]:
    """Every plan of the catalog."""
    catalog = current_catalog()
    return _ok([{"plan": plan_view(catalog, plan)} for plan in catalog.plans.values()])


@bp.post("/customers")
@needs_scope(WRITE)
def create_customer() -> tuple[Response, int]:
    """Create the customer and its Stripe customer; the same reference id again is a no-op."""
    body = parse(CustomerIn, json_body())
    customer, created = upsert_api_customer(
        body.customerReferenceId, str(body.email), body.firstName, body.lastName
    )
    # Committed before Stripe is called: if Stripe fails, the caller's retry (the same
    # reference id) finds the customer and finishes the Stripe side.
    db.session.commit()
    ensure_stripe_customer(customer)
    return _ok(customer_view(customer, _subscriptions_of(customer)), 201 if created else 200)


@bp.get("/customers/<reference_id>")
@needs_scope(READ)
def get_customer(reference_id: str) -> tuple[Response, int]:
    """The customer with its subscriptions."""
    customer = customer_or_404(reference_id)
    return _ok(customer_view(customer, _subscriptions_of(customer)))


@bp.post("/subscriptions")
@needs_scope(WRITE)
def create_subscription() -> tuple[Response, int]:
    """Start a plan: a Checkout URL for paid in-advance plans, else active at once."""
    body = parse(SubscriptionIn, json_body())
    customer = customer_or_404(body.customerReferenceId)
    plan = plan_or_404(body.planId)
    urls = CheckoutUrls(
        success=body.successUrl
        or url_for("billing.checkout_done", _external=True) + "?session_id={CHECKOUT_SESSION_ID}",
        cancel=body.cancelUrl or url_for("billing.pricing", _external=True),
    )
    try:
        checkout_url = start_plan(customer, plan, urls)
    except AlreadySubscribed as exc:
        raise _already_subscribed(exc) from None
    db.session.commit()
    if checkout_url is not None:
        return _ok({"checkoutUrl": checkout_url, "subscription": None}, 200)
    subscription = _subscriptions_of(customer)[0]
    return _ok({"checkoutUrl": None, "subscription": subscription_view(subscription)}, 201)


@bp.post("/subscriptions/<subscription_id>/plan-change")
@needs_scope(WRITE)
def change_plan(subscription_id: str) -> tuple[Response, int]:
    """An upgrade now (prorated, invoiced now) or a downgrade at the end of the period."""
    body = parse(PlanChangeIn, json_body())
    subscription = _subscription_or_404(subscription_id)
    target = plan_or_404(body.changeToPlanId)
    try:
        current = plan_of(subscription)
        if not (current.is_free and subscription.is_live):
            check_change(subscription, target)  # same plan, ended: refused before the type
        kind = change_kind(current, target)
    except ChangeError as exc:
        raise ApiError(CHANGE_STATUS.get(exc.code, 409), exc.code, str(exc)) from None
    if kind.value.upper() != body.changeType:
        raise ApiError(
            400,
            "change_type_mismatch",
            f"Moving to {target.key} is a{'n' if kind is ChangeKind.UPGRADE else ''} {kind.value}.",
        )
    if current.is_free and subscription.is_live and current.key != target.key:
        return _leave_free_plan(subscription, target)
    if kind is ChangeKind.UPGRADE:
        changed = _change(lambda: apply_upgrade(subscription, target, timestamp(), _intent()))
    else:
        changed = _change(lambda: schedule_downgrade(subscription, target, _intent()))
    return _ok(subscription_view(changed))


def _leave_free_plan(subscription: Subscription, target: Plan) -> tuple[Response, int]:
    """From the free plan: a plan billed in arrears needs no card and starts at once (the free
    subscription ends as it starts, as on the account page); one billed in advance is paid
    first, through the Checkout that POST /subscriptions gives."""
    if target.billing != "in_arrears":
        raise ApiError(
            409,
            "use_checkout",
            f"{target.key} is paid in advance: POST /subscriptions with this planId returns "
            "its checkoutUrl; the free plan ends when the paid one starts.",
        )
    customer = subscription.customer
    # Never used: an in-arrears plan starts without Checkout.
    urls = CheckoutUrls(success=url_for("billing.account", _external=True), cancel="")
    try:
        start_plan(customer, target, urls)
    except AlreadySubscribed as exc:
        raise _already_subscribed(exc) from None
    db.session.commit()
    return _ok(subscription_view(_subscriptions_of(customer)[0]))


@bp.post("/subscriptions/cancellation/<subscription_id>")
@needs_scope(WRITE)
def cancel_subscription(subscription_id: str) -> tuple[Response, int]:
    """Cancel with ?cancelMode=END_OF_PERIOD or IMMEDIATE."""
    mode = request.args.get("cancelMode", "")
    if mode not in ("END_OF_PERIOD", "IMMEDIATE"):
        raise ApiError(400, "invalid_cancel_mode", "cancelMode must be END_OF_PERIOD or IMMEDIATE.")
    subscription = _subscription_or_404(subscription_id)
    if mode == "END_OF_PERIOD":
        changed = _change(lambda: cancel_at_period_end(subscription, _intent()))
    else:
        changed = _change(lambda: cancel_now(subscription))
    return _ok(subscription_view(changed))


@bp.delete("/subscriptions/cancellation/<subscription_id>/scheduled")
@needs_scope(WRITE)
def undo_cancellation(subscription_id: str) -> tuple[Response, int]:
    """Undo a cancellation at period end."""
    subscription = _subscription_or_404(subscription_id)
    return _ok(subscription_view(_change(lambda: resume(subscription, _intent()))))


def _already_subscribed(exc: AlreadySubscribed) -> ApiError:
    return ApiError(
        409,
        "already_subscribed",
        f"The customer already has subscription {exc.subscription.stripe_subscription_id}.",
    )
