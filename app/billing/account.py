"""What the account page shows, read from Tollgate's own mirror (never from Stripe)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from app.accounts.mirror import Invoice, Subscription, SubscriptionStatus
from app.accounts.models import Customer
from app.billing.changes import ChangeKind, change_kind
from app.billing.checkout import live_subscription
from app.billing.models import BillingPeriod
from app.catalog import Plan, current_catalog
from app.clock import now
from app.entitlements.access import period_key
from app.entitlements.alerts import alerts_for
from app.entitlements.models import UsageAlert
from app.entitlements.summary import FeatureUsage, PoolView, credit_pools, feature_usage
from app.extensions import db


@dataclass(frozen=True)
class PlanChoice:
    """Another plan the customer can move to, and what the move is called."""

    plan: Plan
    label: str


@dataclass(frozen=True)
class AccountOverview:
    """The customer's plan, status in words, credit pools and latest invoices."""

    subscription: Subscription | None
    plan: Plan | None
    scheduled_plan: Plan | None
    status_words: str
    choices: list[PlanChoice]
    usage: list[FeatureUsage]
    pools: list[PoolView]
    alerts: list[UsageAlert]
    invoices: list[Invoice]
    open_invoice: Invoice | None
    # Minor units the margin floor bills the running period so far, on its next invoice.
    floor_charge: int


def plan_choices(current: Plan) -> list[PlanChoice]:
    """The plans a customer on ``current`` can change to from the account page: every other
    one (changes.py says how each is made)."""
    choices = []
    for plan in current_catalog().plans.values():
        if plan.key == current.key:
            continue
        if plan.tier == current.tier:
            label = f"Switch to {plan.interval}ly"
        else:
            upgrade = current.is_free or change_kind(current, plan) is ChangeKind.UPGRADE
            label = f"{'Upgrade' if upgrade else 'Downgrade'} to {plan.name} ({plan.interval}ly)"
        choices.append(PlanChoice(plan, label))
    return choices


def status_words(subscription: Subscription, at: datetime) -> str:
    """The subscription's status as a customer reads it."""
    if subscription.status is SubscriptionStatus.TRIALING and subscription.trial_end:
        days = max(0, math.ceil((subscription.trial_end - at).total_seconds() / 86400))
        return f"Trial: {days} day{'s' if days != 1 else ''} left"
    if subscription.status is SubscriptionStatus.PAST_DUE:
        return "Past due: your last payment failed"
    if subscription.status is SubscriptionStatus.ACTIVE and subscription.cancel_at_period_end:
        return "Active until the end of the period, then cancelled"
    return {
        SubscriptionStatus.ACTIVE: "Active",
        SubscriptionStatus.CANCELED: "Cancelled",
        SubscriptionStatus.INCOMPLETE: "Waiting for the first payment",
        SubscriptionStatus.INCOMPLETE_EXPIRED: "The first payment never came",
        SubscriptionStatus.UNPAID: "Unpaid",
        SubscriptionStatus.PAUSED: "Paused",
        SubscriptionStatus.TRIALING: "Trial",
    }[subscription.status]


def floor_charge(subscription: Subscription, plan: Plan) -> int:
    """What the margin floor has billed the subscription's running period so far, in minor
    units, on the period's invoice: 0 on a plan that does not bill its floor.

    This is the total the worker keeps on the period each time it settles the floor, every
    minute (app/billing/margin_floor.py), not the margin worked out afresh: that needs the
    period's billable overage, summed over one outbox row per usage event, and took most of the
    page's time for a customer with a million events.
    """
    if not plan.bills_margin_floor:
        return 0
    billed = db.session.scalar(
        select(BillingPeriod.floor_billed).where(
            BillingPeriod.period_key == period_key(subscription)
        )
    )
    return billed or 0


def open_invoice(customer: Customer) -> Invoice | None:
    """The newest invoice still waiting for payment, with Stripe's page to pay it."""
    return db.session.scalar(
        select(Invoice)
        .where(Invoice.customer_id == customer.id, Invoice.status == "open")
        .order_by(Invoice.created.desc())
        .limit(1)
    )


def account_overview(customer: Customer) -> AccountOverview:
    """Everything the account page needs about ``customer``."""
    subscription = live_subscription(customer)
    catalog = current_catalog()
    plan = catalog.plan(subscription.plan_key) if subscription else None
    invoices = list(
        db.session.scalars(
            select(Invoice)
            .where(Invoice.customer_id == customer.id)
            .order_by(Invoice.created.desc(), Invoice.id.desc())
            .limit(10)
        )
    )
    return AccountOverview(
        subscription=subscription,
        plan=plan,
        scheduled_plan=catalog.plan(subscription.scheduled_plan_key or "")
        if subscription
        else None,
        status_words=status_words(subscription, now()) if subscription else "No plan",
        choices=plan_choices(plan) if plan and subscription and subscription.is_live else [],
        usage=feature_usage(customer.id, subscription),
        pools=credit_pools(customer.id, subscription),
        alerts=alerts_for(customer) if subscription else [],
        invoices=invoices,
        open_invoice=open_invoice(customer),
        floor_charge=floor_charge(subscription, plan) if subscription and plan else 0,
    )
