"""Which handler each Stripe event type goes to, with the reason beside it.

Every handler reads the event's object from Stripe as it is now, outside any transaction, then
mirrors it through the one sync path in one short transaction: the order in which Stripe
delivers events, and how often, does not change the state Tollgate ends in, and a slow Stripe
holds no lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.accounts.mirror import Invoice, Subscription
from app.billing.fetch import (
    fetch_checkout_session,
    fetch_invoice,
    fetch_schedule_subscription,
    fetch_subscription,
)
from app.billing.sync import (
    sync_checkout_session,
    sync_invoice,
    sync_scheduled_subscription,
    sync_subscription,
)


@dataclass(frozen=True)
class Handler:
    """Read the event's object from Stripe by its id, then mirror what was read."""

    fetch: Callable[[str], Any]
    sync: Callable[[Any], Subscription | Invoice | None]


CHECKOUT_SESSION = Handler(fetch_checkout_session, sync_checkout_session)
SUBSCRIPTION = Handler(fetch_subscription, sync_subscription)
INVOICE = Handler(fetch_invoice, sync_invoice)
SCHEDULE = Handler(fetch_schedule_subscription, sync_scheduled_subscription)

HANDLERS: dict[str, Handler] = {
    # Checkout finished: link the Stripe customer, mirror the new subscription and first invoice.
    "checkout.session.completed": CHECKOUT_SESSION,
    # Any change of a subscription (status, plan, period, cancellation) is re-read whole.
    "customer.subscription.created": SUBSCRIPTION,
    "customer.subscription.updated": SUBSCRIPTION,
    "customer.subscription.deleted": SUBSCRIPTION,
    # Three days before a trial ends; the account page counts the days from trial_end.
    "customer.subscription.trial_will_end": SUBSCRIPTION,
    # A schedule's change (a downgrade scheduled, changed or released, often from Stripe's
    # dashboard): Stripe sends no subscription event for it, so its subscription is re-read.
    "subscription_schedule.created": SCHEDULE,
    "subscription_schedule.updated": SCHEDULE,
    "subscription_schedule.released": SCHEDULE,
    "subscription_schedule.canceled": SCHEDULE,
    "subscription_schedule.completed": SCHEDULE,
    # Invoices: mirrored for the account page; a paid one opens a period and grants credits.
    "invoice.created": INVOICE,
    "invoice.finalized": INVOICE,
    "invoice.paid": INVOICE,
    "invoice.payment_succeeded": INVOICE,
    # A failed charge: the re-read subscription is past_due, which shows the pay-now banner.
    "invoice.payment_failed": INVOICE,
}
