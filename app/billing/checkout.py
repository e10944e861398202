"""Starting a subscription: Checkout for paid in-advance plans, directly for the others."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from app.accounts.mirror import NEWEST_FIRST, Subscription
from app.accounts.models import Customer
from app.billing.fetch import fetch_checkout_session
from app.billing.gateway import GatewayError, gateway
from app.billing.sync import mirror, mirror_new_subscription, sync_checkout_session
from app.catalog import Plan, current_catalog
from app.catalog.stripe_names import usage_lookup_keys
from app.extensions import db


class AlreadySubscribed(Exception):
    """The customer has a live subscription; a second one would bill it twice."""

    def __init__(self, subscription: Subscription) -> None:
        super().__init__(f"already subscribed to {subscription.plan_key}")
        self.subscription = subscription


class PlanNotOnStripe(GatewayError):
    """The plan's prices are missing in Stripe: the catalog was not synced."""


@dataclass(frozen=True)
class CheckoutUrls:
    """Where Stripe sends the buyer back to."""

    success: str
    cancel: str


def live_subscription(customer: Customer) -> Subscription | None:
    """The customer's trialing, active or past-due subscription, if any."""
    subscriptions = db.session.scalars(
        select(Subscription).where(Subscription.customer_id == customer.id).order_by(*NEWEST_FIRST)
    )
    return next((subscription for subscription in subscriptions if subscription.is_live), None)


def _is_free(subscription: Subscription) -> bool:
    plan = current_catalog().plan(subscription.plan_key)
    return plan is not None and plan.is_free


def trial_available(customer: Customer) -> bool:
    """A trial is given once per customer."""
    had_trial = db.session.scalar(
        select(Subscription.id).where(
            Subscription.customer_id == customer.id, Subscription.trial_end.is_not(None)
        )
    )
    return had_trial is None


def ensure_stripe_customer(customer: Customer) -> str:
    """The customer's Stripe id, creating the Stripe customer the first time; commits.

    The customer must be committed already: Stripe is called with no transaction open. A
    failure leaves the customer without a Stripe id, and the next try creates the same Stripe
    customer (the key names the Tollgate customer), so nothing is made twice.
    """
    if customer.stripe_customer_id is not None:
        return customer.stripe_customer_id
    customer_id, reference_id = customer.id, customer.reference_id
    name = " ".join(part for part in (customer.first_name, customer.last_name) if part)
    stripe_customer = gateway().create_customer(
        email=customer.email, name=name or None, reference_id=reference_id
    )
    db.session.execute(
        update(Customer)
        .where(Customer.id == customer_id, Customer.stripe_customer_id.is_(None))
        .values(stripe_customer_id=stripe_customer.id)
    )
    db.session.commit()
    return stripe_customer.id


def subscription_items(plan: Plan) -> list[dict[str, Any]]:
    """The plan's own price first, then its metered usage prices (overage, the margin floor),
    as Stripe line items."""
    keys = [plan.key, *usage_lookup_keys(plan)]
    prices = gateway().prices_by_lookup_key(keys)
    missing = [key for key in keys if key not in prices]
    if missing:
        raise PlanNotOnStripe(
            "This plan cannot be bought right now. Please try again later.",
            code=f"missing_prices:{','.join(missing)}",
        )
    items: list[dict[str, Any]] = []
    for key in keys:
        price = prices[key]
        metered = price.recurring is not None and price.recurring.usage_type == "metered"
        # Stripe refuses a quantity on metered prices: usage decides what is billed.
        items.append({"price": price.id} if metered else {"price": price.id, "quantity": 1})
    return items


def start_plan(customer: Customer, plan: Plan, urls: CheckoutUrls) -> str | None:
    """Subscribe the customer to ``plan``: the Checkout URL to send it to, or None when done.

    Free and in-arrears plans need no payment up front, so they are subscribed directly and are
    active at once (committed here); paid in-advance plans go through Stripe Checkout, and
    nothing is created here until Stripe confirms the payment (or the trial).
    """
    current = live_subscription(customer)
    if current is not None and not _is_free(current):
        raise AlreadySubscribed(current)
    if current is not None and plan.is_free:
        raise AlreadySubscribed(current)
    stripe_customer_id = ensure_stripe_customer(customer)
    items = subscription_items(plan)
    metadata = {"tollgate_customer": customer.reference_id, "tollgate_plan": plan.key}
    if plan.is_free or plan.billing == "in_arrears":
        attempt = db.session.scalar(
            select(func.count(Subscription.id)).where(Subscription.customer_id == customer.id)
        )
        stripe_subscription = gateway().create_subscription(
            {"customer": stripe_customer_id, "items": items, "metadata": metadata},
            # One key per customer, plan and attempt: a double click subscribes once.
            idempotency_key=f"tollgate-subscribe-{customer.reference_id}-{plan.key}-{attempt}",
        )
        mirror_new_subscription(stripe_subscription)
        return None
    subscription_data: dict[str, Any] = {"metadata": metadata}
    params: dict[str, Any] = {
        "mode": "subscription",
        "customer": stripe_customer_id,
        "client_reference_id": customer.reference_id,
        "metadata": metadata,
        "line_items": items,
        "success_url": urls.success,
        "cancel_url": urls.cancel,
        "subscription_data": subscription_data,
    }
    if plan.trial_days and trial_available(customer):
        subscription_data["trial_period_days"] = plan.trial_days
        if not plan.trial_requires_card:
            params["payment_method_collection"] = "if_required"
            # Without a card by the trial's end there is nothing to charge: end the subscription.
            subscription_data["trial_settings"] = {
                "end_behavior": {"missing_payment_method": "cancel"}
            }
    session = gateway().create_checkout_session(
        params, idempotency_key=f"tollgate-checkout-{uuid.uuid4()}"
    )
    return str(session.url)


@dataclass(frozen=True)
class CheckoutOutcome:
    """What the success page shows: done, still waiting for Stripe, or not paid."""

    state: str  # "active", "pending" or "unpaid"
    subscription: Subscription | None


def confirm_checkout(customer: Customer | None, session_id: str) -> CheckoutOutcome | None:
    """Read the Checkout Session back from Stripe and apply it; None if it is not the customer's.

    Without a customer (a buyer sent to Checkout by the API, who has no Tollgate login) the
    session is applied all the same: applying it is what the webhook would do anyway.
    """
    fetched = fetch_checkout_session(session_id)
    session = fetched.session
    if customer is not None and session.client_reference_id != customer.reference_id:
        return None
    if session.status != "complete":
        return CheckoutOutcome("unpaid", None)
    subscription = mirror(fetched, sync_checkout_session)
    if subscription is not None and subscription.status.value in ("trialing", "active"):
        return CheckoutOutcome("active", subscription)
    return CheckoutOutcome("pending", subscription)
