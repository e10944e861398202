"""The one sync path from Stripe: idempotent upserts keyed by Stripe ids, under a row lock.

Webhooks, the checkout success page and the account page's changes all call these with objects
freshly read from Stripe, so the order and repetition of webhooks never matter.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import stripe
from sqlalchemy import select

from app.accounts.mirror import Invoice, Subscription, SubscriptionStatus
from app.accounts.models import Customer
from app.billing.gateway import gateway, stripe_id
from app.catalog import Plan, current_catalog
from app.catalog.stripe_names import PLAN_FEE_METER
from app.clock import from_timestamp, timestamp, to_datetime
from app.entitlements.credits import Period, end_plan_credits, grant_plan_credits
from app.entitlements.ledger import lock_customers
from app.extensions import db

log = logging.getLogger(__name__)

# Invoices that open a paid period; a paid one grants that period's plan credits.
PERIOD_OPENING_REASONS = frozenset({"subscription_create", "subscription_cycle"})


def lock_customer(
    *, stripe_customer_id: str | None = None, reference_id: str | None = None
) -> Customer | None:
    """The customer, locked for the rest of the transaction so its changes apply one at a time."""
    if stripe_customer_id is not None:
        condition = Customer.stripe_customer_id == stripe_customer_id
    elif reference_id is not None:
        condition = Customer.reference_id == reference_id
    else:
        return None
    customer_id = db.session.scalar(select(Customer.id).where(condition))
    if customer_id is None:
        return None
    # The same lock as usage recording (FOR UPDATE, or SQLite's write lock up front): the success
    # page and a webhook applying the same checkout run one after the other.
    lock_customers([customer_id])
    return db.session.get(Customer, customer_id, populate_existing=True)


def sync_subscription(stripe_subscription: stripe.Subscription) -> Subscription | None:
    """Mirror a Stripe subscription; None when its customer is not one of ours."""
    stripe_customer_id = _id(stripe_subscription.customer)
    metadata: dict[str, str] = (
        stripe_subscription.metadata.to_dict() if stripe_subscription.metadata else {}
    )
    customer = lock_customer(stripe_customer_id=stripe_customer_id)
    if customer is None:
        customer = lock_customer(reference_id=metadata.get("tollgate_customer"))
        if customer is None:
            log.warning("Subscription %s belongs to no Tollgate customer", stripe_subscription.id)
            return None
        customer.stripe_customer_id = stripe_customer_id
    item = plan_item(stripe_subscription)
    subscription = db.session.scalar(
        select(Subscription).where(Subscription.stripe_subscription_id == stripe_subscription.id)
    )
    if subscription is None:
        subscription = Subscription(stripe_subscription_id=stripe_subscription.id)
        db.session.add(subscription)
    subscription.customer = customer
    subscription.plan_key = item.price.lookup_key or metadata.get("tollgate_plan", item.price.id)
    subscription.stripe_price_id = item.price.id
    subscription.status = SubscriptionStatus(stripe_subscription.status)
    subscription.current_period_start = from_timestamp(item.current_period_start)
    subscription.current_period_end = from_timestamp(item.current_period_end)
    subscription.trial_end = from_timestamp(stripe_subscription.trial_end)
    subscription.cancel_at_period_end = stripe_subscription.cancel_at_period_end
    subscription.canceled_at = from_timestamp(stripe_subscription.canceled_at)
    subscription.ended_at = from_timestamp(stripe_subscription.ended_at)
    subscription.stripe_created = to_datetime(stripe_subscription.created)
    subscription.scheduled_plan_key, subscription.scheduled_change_at = _scheduled_change(
        stripe_subscription, item.price.id
    )
    db.session.flush()
    if subscription.has_ended:
        # Cancelled before its period was over (cancel now, dunning): its credits are clawed
        # back; ended with its period (cancel at period end, a trial without a card): they
        # expire. Either way Stripe's object decides, not which path noticed the end first.
        ended_early = stripe_subscription.ended_at is not None and (
            stripe_subscription.ended_at < item.current_period_end
        )
        end_plan_credits(customer.id, subscription.stripe_subscription_id, clawback=ended_early)
    plan = current_catalog().plan(subscription.plan_key)
    if plan is not None and subscription.is_live and not plan.is_free:
        _end_superseded_free_plans(subscription)
    if plan is not None and plan.billing == "in_arrears" and subscription.is_live:
        _open_in_arrears_period(subscription, plan, stripe_customer_id or "", item)
    return subscription


def _end_superseded_free_plans(paid: Subscription) -> None:
    """A customer who moved from the free plan to a paid one keeps only the paid one."""
    catalog = current_catalog()
    others = db.session.scalars(
        select(Subscription).where(
            Subscription.customer_id == paid.customer_id, Subscription.id != paid.id
        )
    )
    for other in others:
        other_plan = catalog.plan(other.plan_key)
        if other.is_live and other_plan is not None and other_plan.is_free:
            sync_subscription(gateway().cancel_subscription(other.stripe_subscription_id))


def _open_in_arrears_period(
    subscription: Subscription, plan: Plan, stripe_customer_id: str, item: stripe.SubscriptionItem
) -> None:
    """An in-arrears period starts entitled: grant its credits, and count its fee on the meter.

    The fee is a metered price, so Stripe bills it on the invoice at the end of the period; the
    identifier names the period, so however often this runs the period is billed once.
    """
    period = Period(
        subscription.stripe_subscription_id,
        start=to_datetime(item.current_period_start),
        end=to_datetime(item.current_period_end),
    )
    grant_plan_credits(subscription.customer_id, plan, period)
    gateway().report_usage(
        event_name=PLAN_FEE_METER,
        stripe_customer_id=stripe_customer_id,
        value=1,
        identifier=f"fee:{period.key}",
        at=max(item.current_period_start, min(timestamp(), item.current_period_end - 1)),
    )


def _scheduled_change(
    stripe_subscription: stripe.Subscription, current_price_id: str
) -> tuple[str | None, datetime | None]:
    """The plan a subscription schedule moves to next, and when; (None, None) without one."""
    if not stripe_subscription.schedule:
        return None, None
    schedule = gateway().retrieve_schedule(_id(stripe_subscription.schedule) or "")
    now = timestamp()
    upcoming = [phase for phase in schedule.phases if phase.start_date > now]
    if not upcoming:
        return None, None
    phase = min(upcoming, key=lambda candidate: candidate.start_date)
    price_ids = {_id(item.price) for item in phase.items}
    if current_price_id in price_ids:
        return None, None
    plans = gateway().prices_by_lookup_key(list(current_catalog().plans))
    for key, price in plans.items():
        if price.id in price_ids:
            return key, to_datetime(phase.start_date)
    return None, None


def plan_item(stripe_subscription: stripe.Subscription) -> stripe.SubscriptionItem:
    """The subscription item of the plan's flat price (metered overage items sit beside it)."""
    items = stripe_subscription.items.data
    for item in items:
        recurring = item.price.recurring
        if recurring is None or recurring.usage_type == "licensed":
            return item
    return items[0]


def sync_invoice(stripe_invoice: stripe.Invoice) -> Invoice | None:
    """Mirror a Stripe invoice and the subscription it bills; a paid period grants credits."""
    customer = lock_customer(stripe_customer_id=_id(stripe_invoice.customer))
    if customer is None:
        log.warning("Invoice %s belongs to no Tollgate customer", stripe_invoice.id)
        return None
    parent = stripe_invoice.parent
    details = parent.subscription_details if parent is not None else None
    stripe_subscription_id = _id(details.subscription) if details is not None else None
    invoice = db.session.scalar(
        select(Invoice).where(Invoice.stripe_invoice_id == stripe_invoice.id)
    )
    if invoice is None:
        invoice = Invoice(stripe_invoice_id=stripe_invoice.id, customer_id=customer.id)
        db.session.add(invoice)
    invoice.stripe_subscription_id = stripe_subscription_id
    invoice.status = str(stripe_invoice.status)
    invoice.billing_reason = stripe_invoice.billing_reason
    invoice.currency = stripe_invoice.currency
    invoice.amount_due = stripe_invoice.amount_due
    invoice.amount_paid = stripe_invoice.amount_paid
    invoice.hosted_invoice_url = stripe_invoice.hosted_invoice_url
    invoice.invoice_pdf = stripe_invoice.invoice_pdf
    invoice.period_start = from_timestamp(stripe_invoice.period_start)
    invoice.period_end = from_timestamp(stripe_invoice.period_end)
    invoice.created = to_datetime(stripe_invoice.created)
    db.session.flush()
    if stripe_subscription_id is not None:
        subscription = sync_subscription(gateway().retrieve_subscription(stripe_subscription_id))
        if subscription is not None and invoice.status == "paid":
            _grant_paid_period(subscription, stripe_invoice)
    return invoice


def _grant_paid_period(subscription: Subscription, stripe_invoice: stripe.Invoice) -> None:
    """Grant plan credits for the period a paid invoice opened, keyed by that period."""
    plan = current_catalog().plan(subscription.plan_key)
    if plan is None or stripe_invoice.billing_reason not in PERIOD_OPENING_REASONS:
        return
    # The subscription as Stripe has it now: one that ended meanwhile keeps no credits, whether
    # its end or this payment was heard of first.
    if not subscription.is_live:
        return
    periods = [
        line.period
        for line in stripe_invoice.lines.data
        if _line_price_id(line) == subscription.stripe_price_id
    ]
    if not periods:
        return
    latest = max(periods, key=lambda line_period: line_period.start)
    # Credits of a period that ended before Stripe's word of it arrived (a webhook delayed past
    # the renewal) could never be used; granting them would also replay rollovers out of order.
    if latest.end <= timestamp():
        return
    period = Period(
        subscription.stripe_subscription_id,
        start=to_datetime(latest.start),
        end=to_datetime(latest.end),
    )
    grant_plan_credits(subscription.customer_id, plan, period)


def sync_checkout_session(session: stripe.checkout.Session) -> Subscription | None:
    """Apply a completed Checkout: link the customer, mirror the subscription and invoice."""
    if session.mode != "subscription" or session.status != "complete":
        return None
    customer = lock_customer(reference_id=session.client_reference_id)
    if customer is None:
        log.warning("Checkout %s names no Tollgate customer", session.id)
        return None
    if customer.stripe_customer_id is None:
        customer.stripe_customer_id = _id(session.customer)
    subscription_id = _id(session.subscription)
    if subscription_id is None:
        return None
    subscription = sync_subscription(gateway().retrieve_subscription(subscription_id))
    invoice_id = _id(session.invoice)
    if invoice_id is not None:
        sync_invoice(gateway().retrieve_invoice(invoice_id))
    return subscription


def _line_price_id(line: stripe.InvoiceLineItem) -> str | None:
    pricing = line.pricing
    if pricing is None or pricing.price_details is None:
        return None
    return _id(pricing.price_details.price)


def _id(value: Any) -> str | None:
    """``stripe_id`` for a field that may also be null."""
    return None if value is None else stripe_id(value)
