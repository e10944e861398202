"""Re-read one customer from Stripe and mirror it whole: its customer object, subscriptions,
invoices and charges, through the one sync path (what an operator's "re-sync" does).

Stripe is read first, with no transaction open; then everything read is written in one short
transaction, as reconciliation repairs an object. The differences are read off the ORM's change
tracking (drift.py), so the operator sees what the mirror had wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import stripe

from app.billing.drift import Change, watching_changes
from app.billing.fetch import FetchedInvoice, FetchedSubscription, fetch_subscription
from app.billing.gateway import gateway
from app.billing.listing import every_object
from app.billing.payments import sync_charge
from app.billing.stripe_import import STEPS
from app.billing.sync import fetch_customer, settle, sync_customer, sync_invoice, sync_subscription
from app.extensions import db


@dataclass(frozen=True)
class FetchedCustomer:
    """All of one customer that a re-sync mirrors, as Stripe has it now."""

    customer: stripe.Customer
    subscriptions: list[FetchedSubscription]
    invoices: list[stripe.Invoice]
    charges: list[stripe.Charge]


def fetch_whole_customer(stripe_customer_id: str) -> FetchedCustomer:
    """Read the customer and everything of it that the mirror keeps; calls Stripe only."""
    stripe_gateway = gateway()

    def listed(object_type: str) -> list[Any]:
        # The import's list parameters (its expansions), narrowed to this customer.
        params = next(step.params for step in STEPS if step.object_type == object_type)
        return list(
            every_object(stripe_gateway, object_type, {**params, "customer": stripe_customer_id})
        )

    return FetchedCustomer(
        customer=fetch_customer(stripe_customer_id),
        # Each subscription is read again as a webhook's handler reads it, with its schedule.
        subscriptions=[fetch_subscription(sub.id) for sub in listed("subscriptions")],
        invoices=listed("invoices"),
        charges=listed("charges"),
    )


def mirror_whole_customer(fetched: FetchedCustomer) -> list[Change]:
    """Write what was read in one transaction, commit, then settle; what the mirror changed.

    Invoices are mirrored as the import mirrors them, without their subscription (synced just
    before from its own read), so a past invoice grants nothing again.
    """
    with watching_changes() as changes:
        customer = sync_customer(fetched.customer)
        for subscription in fetched.subscriptions:
            sync_subscription(subscription)
        for invoice in fetched.invoices:
            sync_invoice(FetchedInvoice(invoice, None))
        for charge in fetched.charges:
            sync_charge(charge)
        db.session.flush()
    customer_id = customer.id if customer is not None else None
    db.session.commit()
    if customer_id is not None:
        settle(customer_id)
    return changes
