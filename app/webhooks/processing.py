"""Record a verified event once, dispatch it to its handler, and keep what went wrong."""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

import stripe
from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError

from app.accounts.models import utcnow
from app.billing.sync import mirror
from app.clock import from_timestamp
from app.extensions import db
from app.webhooks.handlers import HANDLERS
from app.webhooks.models import StripeEvent

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    """What became of a delivered event."""

    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


def process_event(event: stripe.Event) -> Outcome:
    """Record the event, read its object from Stripe, mirror it, then mark the event processed.

    Each step that writes is a short transaction of its own, and Stripe is read between them,
    with none open. The mirror is idempotent, so a repeat that arrives while the first delivery
    is still at work applies the same state again; once the event is marked, a repeat is a
    no-op. A failure anywhere is written to the event log and raised again, so that the
    endpoint answers 500 and Stripe retries.
    """
    if _seen_before(event):
        return Outcome.DUPLICATE
    handler = HANDLERS.get(event.type)
    try:
        if handler is not None:
            mirror(handler.fetch(event.data.object["id"]), handler.sync)
        else:
            log.info(
                "Stripe event %s of type %s has no handler; acknowledged", event.id, event.type
            )
        first = _mark_processed(event)
    except Exception as exc:
        db.session.rollback()
        _record_failure(event, exc)
        raise
    if not first:
        return Outcome.DUPLICATE
    return Outcome.PROCESSED if handler is not None else Outcome.IGNORED


def _seen_before(event: stripe.Event) -> bool:
    """Whether the event was processed already; records it on first sight. Commits."""
    row = db.session.scalar(select(StripeEvent).where(StripeEvent.event_id == event.id))
    if row is not None:
        processed = row.processed_at is not None
        db.session.rollback()
        return processed
    db.session.add(
        StripeEvent(
            event_id=event.id, type=event.type, stripe_created=from_timestamp(event.created)
        )
    )
    try:
        db.session.commit()
    except IntegrityError:
        # A concurrent delivery of the same event recorded it first; both go on (see above).
        db.session.rollback()
    return False


def _mark_processed(event: stripe.Event) -> bool:
    """Mark the event processed; False if a concurrent delivery marked it first. Commits."""
    marked: CursorResult[Any] = db.session.execute(  # type: ignore[assignment]
        update(StripeEvent)
        .where(StripeEvent.event_id == event.id, StripeEvent.processed_at.is_(None))
        .values(attempts=StripeEvent.attempts + 1, processed_at=utcnow(), last_error=None)
    )
    db.session.commit()
    return bool(marked.rowcount)


def _record_failure(event: stripe.Event, exc: Exception) -> None:
    row = db.session.scalar(select(StripeEvent).where(StripeEvent.event_id == event.id))
    if row is None:
        row = StripeEvent(
            event_id=event.id, type=event.type, stripe_created=from_timestamp(event.created)
        )
        db.session.add(row)
    row.attempts = (row.attempts or 0) + 1
    row.last_error = _describe(exc)[:2000]
    db.session.commit()


def _describe(exc: BaseException) -> str:
    """The error and what caused it (a GatewayError wraps Stripe's own message)."""
    parts = []
    current: BaseException | None = exc
    while current is not None:
        parts.append(f"{type(current).__name__}: {current}")
        current = current.__cause__
    return " <- ".join(parts)
