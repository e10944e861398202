"""Record a verified event once, dispatch it to its handler, and keep what went wrong."""

from __future__ import annotations

import logging
from datetime import timedelta
from enum import StrEnum
from typing import Any

import stripe
from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError

from app.accounts.models import utcnow
from app.billing.event_handlers import HANDLERS
from app.billing.gateway import optional_id
from app.billing.sync import mirror
from app.clock import from_timestamp, now
from app.extensions import db
from app.webhooks.models import StripeEvent

log = logging.getLogger(__name__)

# A delivery still unfinished this long after it began is presumed lost with its process (a
# crash, a deploy): the worker's sweep takes the event up (app/webhooks/retries.py).
LOST_DELIVERY_AFTER = timedelta(minutes=5)
# The worker retries a failed event after 1 minute, then 2, 4, ... doubling; after the tenth
# failed attempt (about 17 hours after the first, inside Stripe's own 3 days of retries) the
# event is dead: it waits for an operator to replay it (`flask webhooks retry EVENT_ID`).
FIRST_RETRY_AFTER = timedelta(minutes=1)
MAX_ATTEMPTS = 10


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
    return apply_event(event.id, event.type, event.data.object["id"])


def apply_event(event_id: str, event_type: str, object_id: str) -> Outcome:
    """Fetch the event's object, mirror it and mark the event processed; on a failure, keep
    the error and when to try again, and raise it. Owns its commits."""
    handler = HANDLERS.get(event_type)
    marked: list[bool] = []

    def mark() -> None:
        marked.append(_mark_processed(event_id))

    try:
        if handler is not None:
            # Marked in the transaction that mirrors the object: one commit for both.
            mirror(handler.fetch(object_id), handler.sync, also=mark)
        else:
            log.info(
                "Stripe event %s of type %s has no handler; acknowledged", event_id, event_type
            )
            mark()
            db.session.commit()
        first = marked[0]
    except Exception as exc:
        db.session.rollback()
        _record_failure(event_id, exc)
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
            event_id=event.id,
            type=event.type,
            object_id=event.data.object["id"],
            stripe_customer_id=customer_of(event.data.object),
            stripe_created=from_timestamp(event.created),
            next_attempt_at=now() + LOST_DELIVERY_AFTER,
        )
    )
    try:
        db.session.commit()
    except IntegrityError:
        # A concurrent delivery of the same event recorded it first; both go on (see above).
        db.session.rollback()
    return False


def customer_of(stripe_object: Any) -> str | None:
    """The Stripe customer an event's object belongs to: its ``customer`` (an id, or the object
    when expanded), or the object itself when it is a customer; None for anything else."""
    if getattr(stripe_object, "object", None) == "customer":
        return str(stripe_object.id)
    return optional_id(getattr(stripe_object, "customer", None))


def _mark_processed(event_id: str) -> bool:
    """Mark the event processed, in the caller's transaction; False if a concurrent delivery
    marked it first."""
    marked: CursorResult[Any] = db.session.execute(  # type: ignore[assignment]
        update(StripeEvent)
        .where(StripeEvent.event_id == event_id, StripeEvent.processed_at.is_(None))
        .values(
            attempts=StripeEvent.attempts + 1,
            processed_at=utcnow(),
            last_error=None,
            next_attempt_at=None,
        )
    )
    return bool(marked.rowcount)


def _record_failure(event_id: str, exc: Exception) -> None:
    """Count the failed attempt, keep its error, and set when to try again (or mark the event
    dead). Counted in the database, so attempts made at once by Stripe and the worker both
    count. Commits."""
    attempts = db.session.scalar(
        update(StripeEvent)
        .where(StripeEvent.event_id == event_id, StripeEvent.processed_at.is_(None))
        .values(attempts=StripeEvent.attempts + 1, last_error=_describe(exc)[:2000])
        .returning(StripeEvent.attempts)
    )
    if attempts is not None:
        at = now()
        dead = attempts >= MAX_ATTEMPTS
        db.session.execute(
            update(StripeEvent)
            .where(StripeEvent.event_id == event_id)
            .values(
                next_attempt_at=None if dead else at + FIRST_RETRY_AFTER * 2 ** (attempts - 1),
                dead_at=at if dead else None,
            )
        )
    db.session.commit()


def _describe(exc: BaseException) -> str:
    """The error and what caused it (a GatewayError wraps Stripe's own message)."""
    parts = []
    current: BaseException | None = exc
    while current is not None:
        parts.append(f"{type(current).__name__}: {current}")
        current = current.__cause__
    return " <- ".join(parts)
