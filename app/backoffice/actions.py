"""What an operator does to a customer, each written to the audit log.

A change of Tollgate's own records (credits) and its audit entry are one transaction, which the
caller commits. A change made in Stripe (a plan, a cancellation, a re-sync) cannot share a
transaction with its entry: no transaction is held while Stripe answers. The state before is
read and the transaction ended, the billing service calls Stripe and mirrors its answer through
the one sync path (committing it), and only then is the entry written, with the state after:
Stripe refusing writes nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from app.accounts.mirror import Subscription
from app.accounts.models import Customer, User
from app.backoffice.models import AuditEntry
from app.billing.customer_resync import fetch_whole_customer, mirror_whole_customer
from app.clock import now
from app.entitlements.credits import balances, grant_credits
from app.entitlements.ledger import (
    Movement,
    burn_order,
    expire_due,
    lock_customers,
    pool_for,
    write_movements,
)
from app.entitlements.models import LedgerKind, LotOrigin
from app.extensions import db

# The re-sync's audit entry lists this many of the differences it repaired, and counts the rest.
LISTED_CHANGES = 50


class WouldOverdraw(Exception):
    """Removing more credits than the pool holds; ``available`` is what it holds."""

    def __init__(self, available: int) -> None:
        super().__init__(f"The pool holds only {available:,}: a removal cannot overdraw it.")
        self.available = available


def record(
    operator: User,
    action: str,
    customer: Customer | None,
    subject: str,
    before: Any,
    after: Any,
    reason: str,
) -> None:
    """Append one entry to the audit log (in the caller's transaction)."""
    db.session.add(
        AuditEntry(
            operator_id=operator.id,
            operator_email=operator.email,
            action=action,
            customer_id=customer.id if customer is not None else None,
            subject=subject,
            before=json.dumps(before, default=str),
            after=json.dumps(after, default=str),
            reason=reason,
        )
    )


def grant_promotional_credits(
    operator: User,
    customer: Customer,
    *,
    pool_key: str,
    denomination: str,
    amount: int,
    reason: str,
    expires_at: datetime | None,
) -> None:
    """Grant credits on the operator's word, with the balance before and after in the audit
    log; the caller commits both together."""
    before = _balance(customer.id, pool_key)
    _grant(customer, pool_key, denomination, amount, expires_at)
    record(
        operator,
        "grant_credits",
        customer,
        f"pool {pool_key}",
        {"balance": before},
        {"balance": _balance(customer.id, pool_key), "granted": amount, "expires": expires_at},
        reason,
    )


def adjust_credits(
    operator: User,
    customer: Customer,
    *,
    pool_key: str,
    denomination: str,
    amount: int,
    reason: str,
) -> None:
    """Add (``amount`` > 0, a promotional lot that does not expire) or remove credits, with the
    audit entry; the caller commits both together.

    A removal takes from the lots in burn order, one clawback entry per lot, under the
    customer's lock, and raises WouldOverdraw rather than take more than the pool holds now.
    """
    lock_customers([customer.id])
    at = now()
    expire_due(customer.id, at)  # credits past their date are not there to remove
    before = _balance(customer.id, pool_key)
    if amount > 0:
        _grant(customer, pool_key, denomination, amount, None)
    else:
        pool = pool_for(customer.id, pool_key, denomination)
        lots = burn_order([pool.id], at)
        if -amount > sum(lot.remaining for lot in lots):
            raise WouldOverdraw(sum(lot.remaining for lot in lots))
        operation, left = uuid.uuid4().hex, -amount
        movements = []
        for lot in lots:
            take = min(left, lot.remaining)
            if take:
                source = f"operator:{operation}:{lot.id}"
                movements.append(Movement.of(lot, LedgerKind.CLAWBACK, -take, source))
                left -= take
        write_movements(movements)
    record(
        operator,
        "adjust_credits",
        customer,
        f"pool {pool_key}",
        {"balance": before},
        {"balance": _balance(customer.id, pool_key), "adjusted": amount},
        reason,
    )


def _grant(
    customer: Customer, pool_key: str, denomination: str, amount: int, expires_at: datetime | None
) -> None:
    grant_credits(
        customer.id,
        pool_key=pool_key,
        denomination=denomination,
        amount=amount,
        origin=LotOrigin.PROMOTIONAL,
        source=f"operator:{uuid.uuid4().hex}",
        expires_at=expires_at,
    )
    db.session.flush()


def _balance(customer_id: int, pool_key: str) -> int:
    return next((pool.balance for pool in balances(customer_id) if pool.key == pool_key), 0)


def subscription_state(subscription: Subscription) -> dict[str, Any]:
    """What an audit entry keeps of a subscription, before and after a change."""
    return {
        "plan": subscription.plan_key,
        "status": subscription.status.value,
        "cancel_at_period_end": subscription.cancel_at_period_end,
        "scheduled_plan": subscription.scheduled_plan_key,
        "scheduled_at": subscription.scheduled_change_at,
    }


def change_subscription(
    operator: User,
    customer: Customer,
    subscription: Subscription,
    *,
    action: str,
    reason: str,
    change: Callable[[], Subscription],
) -> Subscription:
    """Make one change in Stripe on the customer's behalf (``change``: a service of
    billing/changes.py or cancellation.py, which mirrors and commits Stripe's answer), then
    add the audit entry with the state before and after; the caller commits the entry.

    A refusal (ChangeError) or Stripe's error (GatewayError) propagates and nothing is written.
    """
    before = subscription_state(subscription)
    subject = f"subscription {subscription.stripe_subscription_id}"
    db.session.rollback()  # the read is done: nothing is held while Stripe answers
    changed = change()
    record(operator, action, customer, subject, before, subscription_state(changed), reason)
    return changed


def resync_customer(operator: User, customer: Customer, reason: str) -> int:
    """Read the customer whole from Stripe and mirror it, then add the audit entry with what
    the mirror had wrong; the number of differences. The caller commits the entry."""
    stripe_customer_id = customer.stripe_customer_id
    assert stripe_customer_id is not None, "only a customer known to Stripe is re-synced"
    db.session.rollback()
    changes = mirror_whole_customer(fetch_whole_customer(stripe_customer_id))
    listed = [
        f"{change.object_type} {change.object_id} {change.field}: {change.before} -> {change.after}"
        for change in changes[:LISTED_CHANGES]
    ]
    if len(changes) > LISTED_CHANGES:
        listed.append(f"and {len(changes) - LISTED_CHANGES} more")
    record(
        operator,
        "resync_customer",
        customer,
        f"stripe customer {stripe_customer_id}",
        {},
        {"differences": len(changes), "changed": listed},
        reason,
    )
    return len(changes)
