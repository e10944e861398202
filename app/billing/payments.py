"""Charges, refunds and disputes, mirrored through the one sync path as subscriptions are.

Each is read from Stripe as it is now, then written in the caller's transaction under the
customer's lock, keyed by its Stripe id: a webhook, an import and a reconciliation that meet
on the same object leave the same row.
"""

from __future__ import annotations

import logging

import stripe
from sqlalchemy import select

from app.accounts.mirror import Charge, Dispute, Refund
from app.billing.gateway import gateway, optional_id, stripe_id
from app.billing.sync import lock_customer, mirrored_row
from app.clock import from_timestamp, to_datetime
from app.entitlements.ledger import lock_customers
from app.extensions import db

log = logging.getLogger(__name__)


def fetch_charge(charge_id: str) -> stripe.Charge:
    """A charge as Stripe has it now."""
    return gateway().retrieve_charge(charge_id)


# Refunds and disputes are read with their charge expanded, and mirror it first: their events
# may come before the charge's own.


def fetch_refund(refund_id: str) -> stripe.Refund:
    """A refund as Stripe has it now, with its charge."""
    return gateway().retrieve_refund(refund_id)


def fetch_dispute(dispute_id: str) -> stripe.Dispute:
    """A dispute as Stripe has it now, with its charge."""
    return gateway().retrieve_dispute(dispute_id)


def sync_charge(stripe_charge: stripe.Charge) -> Charge | None:
    """Mirror a charge of one of our customers; None for anyone else's."""
    if stripe_charge.customer is None:
        return None
    customer = lock_customer(stripe_customer_id=stripe_id(stripe_charge.customer))
    if customer is None:
        log.warning("Charge %s belongs to no Tollgate customer", stripe_charge.id)
        return None
    charge = mirrored_row(Charge, stripe_charge_id=stripe_charge.id)
    details = stripe_charge.payment_method_details
    card = details.card if details is not None else None
    address = stripe_charge.billing_details.address
    charge.customer_id = customer.id
    charge.stripe_payment_intent_id = optional_id(stripe_charge.payment_intent)
    charge.amount = stripe_charge.amount
    charge.amount_refunded = stripe_charge.amount_refunded
    charge.currency = stripe_charge.currency
    charge.status = stripe_charge.status
    charge.disputed = stripe_charge.disputed
    charge.payment_method_type = details.type if details is not None else None
    charge.card_brand = card.brand if card is not None else None
    charge.card_country = card.country if card is not None else None
    charge.billing_country = address.country if address is not None else None
    charge.failure_code = stripe_charge.failure_code
    charge.failure_message = stripe_charge.failure_message
    charge.created = to_datetime(stripe_charge.created)
    db.session.flush()
    return charge


def sync_refund(stripe_refund: stripe.Refund) -> Refund | None:
    """Mirror a refund of a charge of one of our customers."""
    charge_id = optional_id(stripe_refund.charge)
    customer_id = _customer_of_charge(stripe_refund.charge)
    if customer_id is None:
        log.warning("Refund %s is of no charge of a Tollgate customer", stripe_refund.id)
        return None
    refund = mirrored_row(Refund, stripe_refund_id=stripe_refund.id)
    refund.customer_id = customer_id
    refund.stripe_charge_id = charge_id
    refund.amount = stripe_refund.amount
    refund.currency = stripe_refund.currency
    refund.status = stripe_refund.status
    refund.reason = stripe_refund.reason
    refund.created = to_datetime(stripe_refund.created)
    db.session.flush()
    return refund


def sync_dispute(stripe_dispute: stripe.Dispute) -> Dispute | None:
    """Mirror a dispute of a charge of one of our customers."""
    charge_id = stripe_id(stripe_dispute.charge)
    customer_id = _customer_of_charge(stripe_dispute.charge)
    if customer_id is None:
        log.warning("Dispute %s is of no charge of a Tollgate customer", stripe_dispute.id)
        return None
    dispute = mirrored_row(Dispute, stripe_dispute_id=stripe_dispute.id)
    evidence = stripe_dispute.evidence_details
    dispute.customer_id = customer_id
    dispute.stripe_charge_id = charge_id
    dispute.amount = stripe_dispute.amount
    dispute.currency = stripe_dispute.currency
    dispute.status = stripe_dispute.status
    dispute.reason = stripe_dispute.reason
    dispute.evidence_due_by = from_timestamp(evidence.due_by) if evidence is not None else None
    dispute.created = to_datetime(stripe_dispute.created)
    db.session.flush()
    return dispute


def _customer_of_charge(charge: str | stripe.Charge | None) -> int | None:
    """The customer of a refund's or dispute's charge, locked: mirrored with it when it came
    expanded, else as mirrored before."""
    if charge is None:
        return None
    if isinstance(charge, stripe.Charge):
        mirrored = sync_charge(charge)
        return mirrored.customer_id if mirrored is not None else None
    customer_id = db.session.scalar(
        select(Charge.customer_id).where(Charge.stripe_charge_id == charge)
    )
    if customer_id is None:
        return None
    lock_customers([customer_id])
    return customer_id
