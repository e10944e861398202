"""Reading from Stripe all that one sync needs, before any database transaction opens.

The sync path is split in two. These functions only call Stripe (and read the catalog); sync.py
only writes what they read, in one short transaction. So a slow Stripe never holds a lock or a
connection, and whoever reads (a webhook, a page, a command) the same object ends in the same
state, since each read is of Stripe as it is now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import stripe

from app.billing.gateway import gateway, stripe_id
from app.catalog import current_catalog
from app.clock import timestamp, to_datetime

# A subscription comes with its schedule and the schedule's prices: the plan it changes to next
# is then known from one call (Stripe expands at most four levels; this is four). Its discounts
# come whole too, so what it is worth a month is net of them (app/billing/revenue.py), and so
# does its own default card, which Stripe charges before the customer's (app/billing/cards.py).
WITH_SCHEDULE = ["schedule.phases.items.price", "discounts.source.coupon", "default_payment_method"]


@dataclass(frozen=True)
class FetchedSubscription:
    """A subscription as Stripe has it, and the plan change its schedule holds, if any."""

    subscription: stripe.Subscription
    scheduled_plan_key: str | None = None
    scheduled_change_at: datetime | None = None


@dataclass(frozen=True)
class FetchedInvoice:
    """An invoice, and the subscription it bills (None for an invoice of no subscription)."""

    invoice: stripe.Invoice
    subscription: FetchedSubscription | None


@dataclass(frozen=True)
class FetchedCheckout:
    """A Checkout Session, with the subscription and first invoice it made once complete."""

    session: stripe.checkout.Session
    subscription: FetchedSubscription | None
    invoice: FetchedInvoice | None


def fetch_subscription(subscription_id: str) -> FetchedSubscription:
    """The subscription and what its schedule will change."""
    return fetched_subscription(gateway().retrieve_subscription(subscription_id, WITH_SCHEDULE))


def fetched_subscription(stripe_subscription: stripe.Subscription) -> FetchedSubscription:
    """A subscription Stripe has just answered with; its schedule must be expanded, or none."""
    schedule = stripe_subscription.schedule
    if not schedule:
        return FetchedSubscription(stripe_subscription)
    if isinstance(schedule, str):
        raise ValueError(f"subscription {stripe_subscription.id} came without its schedule")
    upcoming = [phase for phase in schedule.phases if phase.start_date > timestamp()]
    if not upcoming:
        return FetchedSubscription(stripe_subscription)
    phase = min(upcoming, key=lambda candidate: candidate.start_date)
    prices = [item.price for item in phase.items if not isinstance(item.price, str)]
    if plan_item(stripe_subscription).price.id in {price.id for price in prices}:
        return FetchedSubscription(stripe_subscription)
    plans = current_catalog().plans
    for price in prices:
        if price.lookup_key in plans:
            return FetchedSubscription(
                stripe_subscription, price.lookup_key, to_datetime(phase.start_date)
            )
    return FetchedSubscription(stripe_subscription)


def fetch_schedule_subscription(schedule_id: str) -> FetchedSubscription | None:
    """The subscription a schedule changes (or released), None for a schedule of none."""
    schedule = gateway().retrieve_schedule(schedule_id)
    subscription = schedule.subscription or schedule.released_subscription
    return fetch_subscription(stripe_id(subscription)) if subscription else None


def fetch_invoice(invoice_id: str, known: FetchedSubscription | None = None) -> FetchedInvoice:
    """The invoice and its subscription (``known``, when the caller has just read it)."""
    invoice = gateway().retrieve_invoice(invoice_id)
    subscription_id = invoice_subscription_id(invoice)
    if subscription_id is None:
        return FetchedInvoice(invoice, None)
    if known is not None and known.subscription.id == subscription_id:
        return FetchedInvoice(invoice, known)
    return FetchedInvoice(invoice, fetch_subscription(subscription_id))


def fetch_checkout_session(session_id: str) -> FetchedCheckout:
    """The session; once complete, its subscription and first invoice too."""
    session = gateway().retrieve_checkout_session(session_id)
    if session.mode != "subscription" or session.status != "complete" or not session.subscription:
        return FetchedCheckout(session, None, None)
    subscription = fetch_subscription(stripe_id(session.subscription))
    invoice = fetch_invoice(stripe_id(session.invoice), subscription) if session.invoice else None
    return FetchedCheckout(session, subscription, invoice)


def invoice_subscription_id(invoice: stripe.Invoice) -> str | None:
    """The subscription an invoice bills, under ``parent.subscription_details``."""
    parent = invoice.parent
    details = parent.subscription_details if parent is not None else None
    if details is None or details.subscription is None:
        return None
    return stripe_id(details.subscription)


def plan_item(stripe_subscription: stripe.Subscription) -> stripe.SubscriptionItem:
    """The subscription item of the plan's flat price (metered overage items sit beside it)."""
    items = stripe_subscription.items.data
    for item in items:
        recurring = item.price.recurring
        if recurring is None or recurring.usage_type == "licensed":
            return item
    return items[0]
