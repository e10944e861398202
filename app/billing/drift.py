"""What a sync changed in the mirror, field by field: the differences that import reports and
reconciliation records.

The sync path writes whatever Stripe has; whether that changed anything is read off the ORM's
own change tracking while it flushes, so the sync functions stay as the webhooks run them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from app.accounts.mirror import Charge, Dispute, Invoice, Refund, Subscription
from app.accounts.models import Customer
from app.entitlements.models import CreditLot
from app.extensions import db

# Each mirrored object and the attribute that names it (its Stripe id; a credit lot's source).
MIRRORED: dict[type[Any], str] = {
    Customer: "stripe_customer_id",
    Subscription: "stripe_subscription_id",
    Invoice: "stripe_invoice_id",
    Charge: "stripe_charge_id",
    Refund: "stripe_refund_id",
    Dispute: "stripe_dispute_id",
    CreditLot: "source",
}
# Bookkeeping of our own, not a fact about Stripe's object.
_OWN_FIELDS = frozenset({"id", "created_at", "updated_at", "customer_id", "pool_id"})
CREATED = "created"


@dataclass(frozen=True)
class Change:
    """One field of one mirrored object that a sync changed (``field`` CREATED: a new row)."""

    object_type: str
    object_id: str
    field: str
    before: str | None
    after: str | None


@contextmanager
def watching_changes() -> Iterator[list[Change]]:
    """Collect the changes the session flushes inside the block into the list it yields."""
    changes: list[Change] = []
    session = db.session()

    def collect(flushing: Session, _context: Any, _instances: Any) -> None:
        for instance in flushing.new:
            if type(instance) in MIRRORED:
                changes.append(_created(instance))
        for instance in flushing.dirty:
            # A lot's balance moves with what a repair does (a clawback), not with Stripe.
            if type(instance) in MIRRORED and not isinstance(instance, CreditLot):
                changes.extend(_changed_fields(instance))

    event.listen(session, "before_flush", collect)
    try:
        yield changes
    finally:
        event.remove(session, "before_flush", collect)


def _name(instance: Any) -> tuple[str, str]:
    return type(instance).__tablename__, str(getattr(instance, MIRRORED[type(instance)]))


def _created(instance: Any) -> Change:
    object_type, object_id = _name(instance)
    after = getattr(instance, "amount", None) if isinstance(instance, CreditLot) else None
    return Change(object_type, object_id, CREATED, None, _text(after))


def _changed_fields(instance: Any) -> Iterator[Change]:
    state = inspect(instance)
    object_type, object_id = _name(instance)
    for attribute in state.mapper.column_attrs:
        if attribute.key in _OWN_FIELDS:
            continue
        history = state.attrs[attribute.key].history
        if not history.added:
            continue
        before = (history.deleted or history.unchanged or [None])[0]
        after = history.added[0]
        if before != after:
            yield Change(object_type, object_id, attribute.key, _text(before), _text(after))


def _text(value: Any) -> str | None:
    """A value as the run's record shows it."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
