"""Customers on real subscriptions in a given state, made without a browser or a Checkout.

Each factory signs a customer up the way the sign-up page does, creates its Stripe customer, card
and subscription in the app's sandbox through the app's own gateway, and applies them with the
one sync path the webhook handlers run. States that only time reaches (active after a trial, past
due) are reached by moving the sandbox's clock and delivering the webhooks it produced, as
`tests.journeys.advance_days` does. Every factory checks that the mirror ended in the state it
promises, so a factory never hands over a customer the app would not have.

``card`` is the card a buyer gives on Checkout; plans the app subscribes directly at sign-up
(free, in arrears) collect none, here as there. The webhooks Stripe queued meanwhile stay queued,
as after a real Checkout: delivering them later changes nothing. The app must have its catalog in
the sandbox (the ``synced`` fixture).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask
from sqlalchemy import select

from app.accounts import services
from app.accounts.mirror import Subscription, SubscriptionStatus
from app.billing.checkout import ensure_stripe_customer, subscription_items
from app.billing.fetch import fetch_invoice
from app.billing.gateway import gateway, stripe_id
from app.billing.sync import mirror, mirror_subscription, sync_invoice
from app.catalog import Plan, current_catalog
from app.clock import timestamp
from app.extensions import db
from app.stripe_sandbox import Sandbox
from app.stripe_sandbox.resources.payments import attach_card
from tests.journeys import DAY, FAILING_CARD, GOOD_CARD, advance_days
from tests.web import WebClient

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class MadeCustomer:
    """A customer a factory made: who it is, how it logs in, and its Stripe ids."""

    id: int
    reference_id: str
    email: str
    password: str
    stripe_customer_id: str
    stripe_subscription_id: str


def new_subscriber(
    app: Flask, plan_key: str, *, email: str = "ada@example.com", card: str | None = GOOD_CARD
) -> MadeCustomer:
    """A customer just subscribed to ``plan_key``, as a new buyer is: trialing on a plan with a
    trial, else active."""
    if _plan(app, plan_key).trial_days:
        return trialing_customer(app, plan_key, email=email, card=card)
    return active_customer(app, plan_key, email=email, card=card)


def trialing_customer(
    app: Flask, plan_key: str, *, email: str = "ada@example.com", card: str | None = GOOD_CARD
) -> MadeCustomer:
    """A customer at the start of ``plan_key``'s trial, with ``card`` (None: no card)."""
    plan = _plan(app, plan_key)
    if not plan.trial_days:
        raise ValueError(f"{plan_key} has no trial")
    made = _subscribe(app, plan, email, card)
    return _expect(app, made, SubscriptionStatus.TRIALING)


def active_customer(
    app: Flask, plan_key: str, *, email: str = "ada@example.com", card: str | None = GOOD_CARD
) -> MadeCustomer:
    """A customer whose ``plan_key`` is active and paid: past its trial when it has one (the
    sandbox's clock moves a day past the trial's end), else from the start."""
    plan = _plan(app, plan_key)
    made = _subscribe(app, plan, email, card)
    if plan.trial_days:
        _pass_the_period(app, made)
    return _expect(app, made, SubscriptionStatus.ACTIVE)


def past_due_customer(app: Flask, plan_key: str, *, email: str = "ada@example.com") -> MadeCustomer:
    """A customer whose first charge for ``plan_key`` failed: its card is the test card that
    attaches but declines (4000 0000 0000 0341), or none for a plan sign-up subscribes directly
    (in arrears); the sandbox's clock moves a day past that charge (the trial's end, or the
    in-arrears period's end)."""
    plan = _plan(app, plan_key)
    if plan.is_free:
        raise ValueError("a free plan is never charged, so it cannot be past due")
    made = _subscribe(app, plan, email, FAILING_CARD)
    _pass_the_period(app, made)
    return _expect(app, made, SubscriptionStatus.PAST_DUE)


def canceled_customer(
    app: Flask, plan_key: str, *, email: str = "ada@example.com", card: str | None = GOOD_CARD
) -> MadeCustomer:
    """A customer whose ``plan_key`` was cancelled at once right after it started (during its
    trial, when it has one), as the account page's "Cancel now" does."""
    made = _subscribe(app, _plan(app, plan_key), email, card)
    with app.app_context():
        gateway().cancel_subscription(made.stripe_subscription_id)
        # What customer.subscription.deleted's handler does.
        mirror_subscription(made.stripe_subscription_id)
    return _expect(app, made, SubscriptionStatus.CANCELED)


def newest_subscription(app: Flask) -> Subscription:
    """The subscription mirrored last, detached from the session so that a test can read it."""
    with app.app_context():
        subscription = db.session.scalars(
            select(Subscription).order_by(Subscription.id.desc())
        ).first()
        assert subscription is not None
        db.session.expunge(subscription)
        return subscription


def log_in(client: WebClient, customer: MadeCustomer) -> WebClient:
    """Log ``client`` in as ``customer`` through the log-in page."""
    response = client.log_in(customer.email, customer.password)
    assert response.status_code == 302, response.text
    return client


def _plan(app: Flask, plan_key: str) -> Plan:
    with app.app_context():
        plan = current_catalog().plan(plan_key)
    if plan is None:
        raise ValueError(f"there is no plan {plan_key!r} in the catalog")
    return plan


def _subscribe(app: Flask, plan: Plan, email: str, card: str | None) -> MadeCustomer:
    """Sign up, then subscribe to ``plan`` as Checkout (or, for plans that need no payment up
    front, the sign-up page itself) would, and apply what Stripe made."""
    with app.app_context():
        customer = services.register(email, PASSWORD).customer
        db.session.commit()
        stripe_customer_id = ensure_stripe_customer(customer)
        db.session.commit()
        metadata = {"tollgate_customer": customer.reference_id, "tollgate_plan": plan.key}
        params: dict[str, Any] = {
            "customer": stripe_customer_id,
            "items": subscription_items(plan),
            "metadata": metadata,
        }
        # Plans the app subscribes directly (free, in arrears) collect no card at sign-up.
        if not plan.is_free and plan.billing != "in_arrears":
            if card is not None:
                params["default_payment_method"] = _attach_card(app, stripe_customer_id, card)
            elif plan.trial_requires_card or not plan.trial_days:
                raise ValueError(f"{plan.key} cannot start without a card")
            if plan.trial_days:
                params["trial_period_days"] = plan.trial_days
                if not plan.trial_requires_card:
                    params["trial_settings"] = {
                        "end_behavior": {"missing_payment_method": "cancel"}
                    }
        stripe_subscription = gateway().create_subscription(
            params, idempotency_key=f"tollgate-factory-{customer.reference_id}-{plan.key}"
        )
        # What the customer.subscription.created and invoice.paid handlers do.
        if stripe_subscription.latest_invoice is None:
            mirror_subscription(stripe_subscription.id)
        else:
            invoice_id = stripe_id(stripe_subscription.latest_invoice)
            mirror(fetch_invoice(invoice_id), sync_invoice)
        return MadeCustomer(
            id=customer.id,
            reference_id=customer.reference_id,
            email=customer.email,
            password=PASSWORD,
            stripe_customer_id=stripe_customer_id,
            stripe_subscription_id=stripe_subscription.id,
        )


def _attach_card(app: Flask, stripe_customer_id: str, card: str) -> str:
    """Put ``card`` on the Stripe customer as its default, as the hosted Checkout page does
    (Stripe's API takes no raw card numbers, so the sandbox's own step makes the card)."""
    sandbox: Sandbox = app.extensions["stripe_sandbox"]
    method = sandbox.run(
        lambda ctx: attach_card(ctx, ctx.fetch("customer", stripe_customer_id), card, "12 / 34")
    )
    gateway().client.v1.customers.update(
        stripe_customer_id, {"invoice_settings": {"default_payment_method": method["id"]}}
    )
    return str(method["id"])


def _pass_the_period(app: Flask, customer: MadeCustomer) -> None:
    """Move the sandbox's clock a day past the subscription's current period (where its next
    charge falls) and deliver the webhooks that produced."""
    with app.app_context():
        subscription = _subscription(customer)
        assert subscription.current_period_end is not None
        seconds = subscription.current_period_end.timestamp() - timestamp() + DAY
    advance_days(app.extensions["stripe_sandbox"], seconds / DAY)


def _expect(app: Flask, customer: MadeCustomer, status: SubscriptionStatus) -> MadeCustomer:
    """``customer``, once its mirrored subscription is known to be in ``status``."""
    with app.app_context():
        mirrored = _subscription(customer).status
    assert mirrored == status, f"the factory's subscription is {mirrored.value}, not {status.value}"
    return customer


def _subscription(customer: MadeCustomer) -> Subscription:
    return db.session.scalars(
        select(Subscription).where(
            Subscription.stripe_subscription_id == customer.stripe_subscription_id
        )
    ).one()
