"""The one sync path from Stripe: idempotent upserts keyed by Stripe ids, under a row lock.

Webhooks, the checkout success page, the account page's changes and commands all mirror what
fetch.py has just read from Stripe, so the order and repetition of webhooks never matter. The
``sync_*`` functions only write, in the caller's transaction; ``mirror_*`` fetch, sync and
commit, then do what the sync leaves for Stripe (``settle``), so no transaction is open while
Stripe is called.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import stripe
from sqlalchemy import func, inspect, select

from app.accounts.mirror import (
    BillingAddress,
    Charge,
    Dispute,
    Invoice,
    Refund,
    Subscription,
    SubscriptionStatus,
    TaxId,
)
from app.accounts.models import Customer, utcnow
from app.accounts.services import normalize_email
from app.billing.cards import mirror_default_card
from app.billing.fetch import (
    FetchedCheckout,
    FetchedInvoice,
    FetchedSubscription,
    fetch_subscription,
    fetched_subscription,
    invoice_subscription_id,
    plan_item,
)
from app.billing.gateway import GatewayError, gateway, optional_id, stripe_id
from app.billing.overage_forwarding import queue_meter_event
from app.billing.periods import record_period
from app.billing.revenue import invoice_monthly_amount, record_change, subscription_terms
from app.catalog import Plan, current_catalog
from app.catalog.stripe_names import PLAN_FEE_METER
from app.clock import from_timestamp, now, timestamp, to_datetime
from app.entitlements.credits import (
    Period,
    end_plan_credits,
    grant_plan_credits,
    top_up_plan_credits,
)
from app.entitlements.ledger import lock_customers
from app.extensions import Base, db

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


Row = TypeVar("Row", bound=Base)


def mirrored_row(model: type[Row], **stripe_id: str) -> Row:
    """The row that mirrors a Stripe object, found by its Stripe id (one keyword argument); a
    new one, added to the session, on first sight."""
    row = db.session.scalar(select(model).filter_by(**stripe_id))
    if row is None:
        row = model(**stripe_id)
        db.session.add(row)
    return row


Fetched = TypeVar("Fetched")
Mirrored = Subscription | Invoice | Charge | Refund | Dispute | Customer
Synced = TypeVar("Synced", bound=Mirrored | None)


def mirror(
    fetched: Fetched,
    sync: Callable[[Fetched], Synced],
    also: Callable[[], object] | None = None,
) -> Synced:
    """Write what fetch.py read with ``sync`` in one short transaction, with what ``also``
    writes (a webhook's event marked processed), commit, then settle."""
    synced = sync(fetched)
    if isinstance(synced, Customer):
        customer_id: int | None = synced.id
    else:
        customer_id = synced.customer_id if synced is not None else None
    if also is not None:
        also()
    db.session.commit()
    if customer_id is not None:
        settle(customer_id)
    return synced


def mirror_subscription(subscription_id: str) -> Subscription | None:
    """Read the subscription from Stripe and mirror it; commits, then settles."""
    return mirror(fetch_subscription(subscription_id), sync_subscription)


def mirror_new_subscription(stripe_subscription: stripe.Subscription) -> Subscription | None:
    """Mirror a subscription Stripe has just created (it has no schedule yet); commits."""
    return mirror(fetched_subscription(stripe_subscription), sync_subscription)


def settle(customer_id: int) -> None:
    """What a committed sync leaves for Stripe: a free plan that a paid one replaced is ended.

    It follows from what is committed, so a process that stops before this finishes leaves
    nothing lost: the next sync of the customer ends the free plan. (Meter events a sync queues,
    an in-arrears plan's fee, are the worker's to send, like overage: never from a webhook.)
    """
    for stripe_subscription_id in _superseded_free_plans(customer_id):
        try:
            ended = gateway().cancel_subscription(stripe_subscription_id)
        except GatewayError as exc:
            # The paid plan is in place; the free one ends at the customer's next sync.
            log.warning("Ending free plan %s failed: %s", stripe_subscription_id, exc.code)
            continue
        sync_subscription(fetched_subscription(ended))
        db.session.commit()


def _superseded_free_plans(customer_id: int) -> list[str]:
    """A customer who moved from the free plan to a paid one keeps only the paid one."""
    catalog = current_catalog()
    subscriptions = db.session.scalars(
        select(Subscription).where(Subscription.customer_id == customer_id)
    )
    live = [
        (subscription.stripe_subscription_id, catalog.plan(subscription.plan_key))
        for subscription in subscriptions
        if subscription.is_live
    ]
    db.session.rollback()  # the read is done: nothing is held while Stripe is called
    free = [sub_id for sub_id, plan in live if plan is not None and plan.is_free]
    has_paid = any(plan is not None and not plan.is_free for _, plan in live)
    return free if has_paid else []


def sync_subscription(fetched: FetchedSubscription) -> Subscription | None:
    """Mirror a Stripe subscription; None when its customer is not one of ours."""
    stripe_subscription = fetched.subscription
    stripe_customer_id = optional_id(stripe_subscription.customer)
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
    subscription = mirrored_row(Subscription, stripe_subscription_id=stripe_subscription.id)
    first_seen = inspect(subscription).pending
    previous_plan_key, previous_start = subscription.plan_key, subscription.current_period_start
    subscription.customer = customer
    subscription.plan_key = plan_key_of(item.price, metadata)
    subscription.stripe_price_id = item.price.id
    subscription.status = SubscriptionStatus(stripe_subscription.status)
    subscription.current_period_start = from_timestamp(item.current_period_start)
    subscription.current_period_end = from_timestamp(item.current_period_end)
    subscription.trial_end = from_timestamp(stripe_subscription.trial_end)
    subscription.cancel_at_period_end = stripe_subscription.cancel_at_period_end
    subscription.canceled_at = from_timestamp(stripe_subscription.canceled_at)
    subscription.ended_at = from_timestamp(stripe_subscription.ended_at)
    if subscription.is_live:
        mirror_default_card(customer, stripe_subscription.default_payment_method)
    subscription.stripe_created = to_datetime(stripe_subscription.created)
    subscription.scheduled_plan_key = fetched.scheduled_plan_key
    subscription.scheduled_change_at = fetched.scheduled_change_at
    subscription.monthly_amount, subscription.quantity, subscription.currency = subscription_terms(
        stripe_subscription
    )
    db.session.flush()
    record_change(customer.id)
    record_period(subscription)
    if subscription.has_ended:
        # Cancelled before its period was over (cancel now, dunning): its credits are clawed
        # back; ended with its period (cancel at period end, a trial without a card): they
        # expire. Either way Stripe's object decides, not which path noticed the end first.
        ended_early = stripe_subscription.ended_at is not None and (
            stripe_subscription.ended_at < item.current_period_end
        )
        end_plan_credits(customer.id, subscription.stripe_subscription_id, clawback=ended_early)
    plan = current_catalog().plan(subscription.plan_key)
    if plan is not None and first_seen and plan.billing == "in_advance":
        _credit_a_paid_period_first_seen(subscription, plan)
    if plan is not None and subscription.is_live and previous_plan_key not in (None, plan.key):
        _credit_an_upgrade(subscription, previous_plan_key or "", plan, previous_start)
    if plan is not None and plan.billing == "in_arrears" and subscription.is_live:
        _open_in_arrears_period(subscription, plan, item)
    return subscription


def plan_key_of(price: stripe.Price, metadata: dict[str, str]) -> str:
    """The plan a subscription's price bills (see Catalog.plan_key_of_price); a price of no
    plan keeps its id, which no plan has, so the subscription entitles to nothing."""
    catalog_key = current_catalog().plan_key_of_price(price.id, price.lookup_key)
    return catalog_key or metadata.get("tollgate_plan") or price.lookup_key or price.id


def _credit_a_paid_period_first_seen(subscription: Subscription, plan: Plan) -> None:
    """A subscription Tollgate first hears of while it is active or trialing has its running
    period paid for (Stripe would have it past due otherwise): its credits are granted, as a
    renewal's would be, whichever invoice opened the period (an upgrade's, a renewal's, one
    from before an import). The same period's paid invoice grants nothing more."""
    start, end = subscription.current_period_start, subscription.current_period_end
    if subscription.status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING):
        return
    if start is None or end is None or end <= now():
        return
    period = Period(subscription.stripe_subscription_id, start, end)
    grant_plan_credits(subscription.customer_id, plan, period)


def sync_scheduled_subscription(fetched: FetchedSubscription | None) -> Subscription | None:
    """Mirror the subscription a schedule changes (see fetch_schedule_subscription)."""
    return sync_subscription(fetched) if fetched is not None else None


def _credit_an_upgrade(
    subscription: Subscription, old_key: str, new: Plan, previous_start: datetime | None
) -> None:
    """An upgrade's credits hold at once, granted by whichever sync first sees the new plan.

    Within the period, each pool gets the difference between the plans' grants; a switch to a
    longer interval starts a new period at once (Stripe resets the billing cycle anchor), which
    gets the new plan's whole grant. A downgrade takes effect at a renewal, whose paid invoice
    grants the new plan's credits.
    """
    catalog = current_catalog()
    old = catalog.plan(old_key)
    start, end = subscription.current_period_start, subscription.current_period_end
    if old is None or start is None or end is None or not catalog.is_upgrade(old, new):
        return
    period = Period(subscription.stripe_subscription_id, start, end)
    if start != previous_start:
        grant_plan_credits(subscription.customer_id, new, period)
    else:
        top_up_plan_credits(subscription.customer_id, old, new, period)


def _open_in_arrears_period(
    subscription: Subscription, plan: Plan, item: stripe.SubscriptionItem
) -> None:
    """An in-arrears period starts entitled: grant its credits, and count its fee on the meter.

    The fee is a metered price, so Stripe bills it on the invoice at the end of the period. Its
    meter event is queued here and sent after the commit; the identifier names the period, so
    however often this runs the period is billed once.
    """
    period = Period(
        subscription.stripe_subscription_id,
        start=to_datetime(item.current_period_start),
        end=to_datetime(item.current_period_end),
    )
    grant_plan_credits(subscription.customer_id, plan, period)
    queue_meter_event(
        subscription.customer_id,
        event_name=PLAN_FEE_METER,
        identifier=f"fee:{period.key}",
        units=1,
        at=to_datetime(
            max(item.current_period_start, min(timestamp(), item.current_period_end - 1))
        ),
    )


def sync_invoice(fetched: FetchedInvoice) -> Invoice | None:
    """Mirror a Stripe invoice and the subscription it bills; a paid period grants credits."""
    stripe_invoice = fetched.invoice
    customer = lock_customer(stripe_customer_id=optional_id(stripe_invoice.customer))
    if customer is None:
        log.warning("Invoice %s belongs to no Tollgate customer", stripe_invoice.id)
        return None
    invoice = mirrored_row(Invoice, stripe_invoice_id=stripe_invoice.id)
    invoice.customer_id = customer.id
    invoice.stripe_subscription_id = invoice_subscription_id(stripe_invoice)
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
    invoice.attempt_count = stripe_invoice.attempt_count
    invoice.next_payment_attempt = from_timestamp(stripe_invoice.next_payment_attempt)
    invoice.stripe_payment_intent_id = (
        _payment_intent_of(stripe_invoice) or invoice.stripe_payment_intent_id
    )
    invoice.monthly_amount = invoice_monthly_amount(
        stripe_invoice, fetched.subscription.subscription if fetched.subscription else None
    )
    db.session.flush()
    if fetched.subscription is not None:
        subscription = sync_subscription(fetched.subscription)
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


def fetch_customer(customer_id: str) -> stripe.Customer:
    """A customer as Stripe has it now, with its default card and tax IDs."""
    return gateway().retrieve_customer(customer_id)


def fetch_tax_id_customer(tax_id: str) -> stripe.Customer | None:
    """The customer a tax ID belongs to, as Stripe has it now; None when neither Stripe nor the
    mirror knows whose it is (deleted before Tollgate heard of it: nothing to undo)."""
    owner = gateway().tax_id_owner(tax_id)
    if owner is None:
        # Deleted: the mirror still says whose it was.
        owner = db.session.scalar(
            select(Customer.stripe_customer_id)
            .join(TaxId, TaxId.customer_id == Customer.id)
            .where(TaxId.stripe_tax_id == tax_id)
        )
        db.session.rollback()  # the read is done: nothing is held while Stripe is called
    return None if owner is None else fetch_customer(owner)


def sync_tax_id_customer(stripe_customer: stripe.Customer | None) -> Customer | None:
    """Mirror the customer whose tax IDs changed (see fetch_tax_id_customer)."""
    return sync_customer(stripe_customer) if stripe_customer is not None else None


def sync_customer(stripe_customer: stripe.Customer, *, adopt: bool = False) -> Customer | None:
    """Mirror a Stripe customer's email, name and country onto the Tollgate customer it is.

    It is ours when its id is linked, or (``adopt``: an import) when its metadata names one
    of our reference ids or, failing that, its email is that of a customer with no Stripe
    customer yet. An import adopts a customer it cannot match as a new one, which its owner
    claims by invitation (accounts/invitations.py). Webhooks only update known customers.
    """
    customer = lock_customer(stripe_customer_id=stripe_customer.id)
    if customer is None and adopt:
        customer = _match_customer(stripe_customer)
    if customer is None and adopt:
        customer = Customer(
            reference_id=stripe_customer.id,
            stripe_customer_id=stripe_customer.id,
            imported_at=utcnow(),
        )
        db.session.add(customer)
    if customer is None:
        return None
    if getattr(stripe_customer, "deleted", False):
        return customer
    customer.stripe_customer_id = stripe_customer.id
    customer.email = normalize_email(stripe_customer.email) if stripe_customer.email else None
    if stripe_customer.name:
        first, _, last = stripe_customer.name.strip().partition(" ")
        customer.first_name, customer.last_name = first or None, last or None
    address = stripe_customer.address
    customer.country = address.country if address is not None else None
    if stripe_customer.invoice_settings is not None:
        mirror_default_card(customer, stripe_customer.invoice_settings.default_payment_method)
    db.session.flush()
    _mirror_billing_address(customer, address)
    # Stripe sends tax IDs only when asked (fetch_customer asks; an import's list does not).
    tax_ids = getattr(stripe_customer, "tax_ids", None)
    if tax_ids is not None:
        _mirror_tax_ids(customer, tax_ids.data)
    return customer


def _mirror_billing_address(customer: Customer, address: stripe.Customer.Address | None) -> None:
    """The customer's billing address as Stripe has it; none when Stripe has none."""
    row = db.session.scalar(select(BillingAddress).where(BillingAddress.customer_id == customer.id))
    parts = {name: getattr(address, name, None) or None for name in ADDRESS_PARTS}
    if not any(parts.values()):
        if row is not None:
            db.session.delete(row)
        return
    if row is None:
        row = BillingAddress(customer_id=customer.id)
        db.session.add(row)
    for name, value in parts.items():
        setattr(row, name, value)
    db.session.flush()


ADDRESS_PARTS = ("line1", "line2", "city", "state", "postal_code", "country")


def _mirror_tax_ids(customer: Customer, tax_ids: list[stripe.TaxId]) -> None:
    """The customer's tax IDs become exactly those Stripe has."""
    current = {tax_id.id: tax_id for tax_id in tax_ids}
    rows = db.session.scalars(select(TaxId).where(TaxId.customer_id == customer.id)).all()
    for row in rows:
        if row.stripe_tax_id not in current:
            db.session.delete(row)
    for stripe_tax_id in current.values():
        row = mirrored_row(TaxId, stripe_tax_id=stripe_tax_id.id)
        row.customer_id = customer.id
        row.type = stripe_tax_id.type
        row.value = stripe_tax_id.value
        row.country = stripe_tax_id.country
        verification = stripe_tax_id.verification
        row.verification_status = verification.status if verification is not None else None
        row.created = to_datetime(stripe_tax_id.created)
    db.session.flush()


def _match_customer(stripe_customer: stripe.Customer) -> Customer | None:
    """The Tollgate customer a Stripe customer of an imported account is, if any: by our
    reference id in its metadata, else by email among customers not linked to Stripe yet."""
    metadata = stripe_customer.metadata.to_dict() if stripe_customer.metadata else {}
    customer = lock_customer(reference_id=metadata.get("tollgate_customer"))
    if customer is not None and customer.stripe_customer_id in (None, stripe_customer.id):
        return customer
    if not stripe_customer.email:
        return None
    candidates = db.session.scalars(
        select(Customer.id)
        .where(
            func.lower(Customer.email) == normalize_email(stripe_customer.email),
            Customer.stripe_customer_id.is_(None),
        )
        .limit(2)
    ).all()
    if len(candidates) != 1:
        return None  # none, or several: an email that is not one customer's is not a match
    lock_customers(candidates)
    return db.session.get(Customer, candidates[0], populate_existing=True)


def sync_checkout_session(fetched: FetchedCheckout) -> Subscription | None:
    """Apply a completed Checkout: link the customer, mirror the subscription and invoice."""
    session = fetched.session
    if session.mode != "subscription" or session.status != "complete":
        return None
    customer = lock_customer(reference_id=session.client_reference_id)
    if customer is None:
        log.warning("Checkout %s names no Tollgate customer", session.id)
        return None
    if customer.stripe_customer_id is None:
        customer.stripe_customer_id = optional_id(session.customer)
    if fetched.subscription is None:
        return None
    subscription = sync_subscription(fetched.subscription)
    if fetched.invoice is not None:
        sync_invoice(fetched.invoice)
    return subscription


def _payment_intent_of(stripe_invoice: stripe.Invoice) -> str | None:
    """The PaymentIntent of the invoice's default payment (else its first), which its charges
    name; None when its ``payments`` were not read (they come only when expanded)."""
    payments = getattr(stripe_invoice, "payments", None)
    if not payments:
        return None
    ordered = sorted(payments.data, key=lambda payment: not payment.is_default)
    for payment in ordered:
        if payment.payment.payment_intent is not None:
            return stripe_id(payment.payment.payment_intent)
    return None


def _line_price_id(line: stripe.InvoiceLineItem) -> str | None:
    pricing = line.pricing
    if pricing is None or pricing.price_details is None:
        return None
    return optional_id(pricing.price_details.price)
