"""Which handler each Stripe event type goes to, with the reason beside it.

Every handler re-reads the object from Stripe and runs the one sync path, so the order in which
Stripe delivers events, and how often, does not change the state Tollgate ends in.
"""

from __future__ import annotations

from collections.abc import Callable

import stripe

from app.webhooks.handlers import checkout_session, invoice, subscription

Handler = Callable[[stripe.Event], None]

HANDLERS: dict[str, Handler] = {
    # Checkout finished: link the Stripe customer, mirror the new subscription and first invoice.
    "checkout.session.completed": checkout_session.handle_completed,
    # Any change of a subscription (status, plan, period, cancellation) is re-read whole.
    "customer.subscription.created": subscription.handle_changed,
    "customer.subscription.updated": subscription.handle_changed,
    "customer.subscription.deleted": subscription.handle_changed,
    # Three days before a trial ends; the account page counts the days from trial_end.
    "customer.subscription.trial_will_end": subscription.handle_changed,
    # Invoices: mirrored for the account page; a paid one opens a period and grants credits.
    "invoice.created": invoice.handle_changed,
    "invoice.finalized": invoice.handle_changed,
    "invoice.paid": invoice.handle_changed,
    "invoice.payment_succeeded": invoice.handle_changed,
    # A failed charge: the re-read subscription is past_due, which shows the pay-now banner.
    "invoice.payment_failed": invoice.handle_changed,
}
