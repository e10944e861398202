"""Which handler each Stripe event type goes to, with the reason beside it.

Webhooks, the worker's retries and reconciliation (which reads Stripe's own event list) all
apply an event through this table. Every handler reads the event's object from Stripe as it is
now, outside any transaction, then mirrors it through the one sync path in one short
transaction: the order in which Stripe delivers events, and how often, does not change the
state Tollgate ends in, and a slow Stripe holds no lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.accounts.mirror import Charge, Dispute, Invoice, Refund, Subscription
from app.accounts.models import Customer
from app.billing.fetch import (
    fetch_checkout_session,
    fetch_invoice,
    fetch_schedule_subscription,
    fetch_subscription,
)
from app.billing.payments import (
    fetch_charge,
    fetch_dispute,
    fetch_refund,
    sync_charge,
    sync_dispute,
    sync_refund,
)
from app.billing.sync import (
    fetch_customer,
    fetch_tax_id_customer,
    sync_checkout_session,
    sync_customer,
    sync_invoice,
    sync_scheduled_subscription,
    sync_subscription,
    sync_tax_id_customer,
)


@dataclass(frozen=True)
class Handler:
    """Read the event's object from Stripe by its id, then mirror what was read."""

    fetch: Callable[[str], Any]
    sync: Callable[[Any], Subscription | Invoice | Charge | Refund | Dispute | Customer | None]


CHECKOUT_SESSION = Handler(fetch_checkout_session, sync_checkout_session)
SUBSCRIPTION = Handler(fetch_subscription, sync_subscription)
INVOICE = Handler(fetch_invoice, sync_invoice)
SCHEDULE = Handler(fetch_schedule_subscription, sync_scheduled_subscription)
CUSTOMER = Handler(fetch_customer, sync_customer)
TAX_ID = Handler(fetch_tax_id_customer, sync_tax_id_customer)
CHARGE = Handler(fetch_charge, sync_charge)
REFUND = Handler(fetch_refund, sync_refund)
DISPUTE = Handler(fetch_dispute, sync_dispute)

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
    # A customer's email, name, address or default card changed (in Stripe's dashboard or
    # portal); it is re-read with its tax IDs.
    "customer.updated": CUSTOMER,
    # A tax ID added, changed (verified) or removed in the portal: its customer is re-read.
    "customer.tax_id.created": TAX_ID,
    "customer.tax_id.updated": TAX_ID,
    "customer.tax_id.deleted": TAX_ID,
    # Payments, for the back office's revenue, refunds, disputes and geography.
    "charge.succeeded": CHARGE,
    "charge.failed": CHARGE,
    "charge.updated": CHARGE,
    "charge.captured": CHARGE,
    "charge.refunded": CHARGE,
    "refund.created": REFUND,
    "refund.updated": REFUND,
    "refund.failed": REFUND,
    "charge.dispute.created": DISPUTE,
    "charge.dispute.updated": DISPUTE,
    "charge.dispute.closed": DISPUTE,
    "charge.dispute.funds_withdrawn": DISPUTE,
    "charge.dispute.funds_reinstated": DISPUTE,
}
