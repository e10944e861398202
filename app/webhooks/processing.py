"""Record a verified event once, dispatch it to its handler, and keep what went wrong."""

from __future__ import annotations

import logging
from enum import StrEnum

import stripe
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.accounts.models import utcnow
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
    IN_PROGRESS = "in_progress"


def process_event(event: stripe.Event) -> Outcome:
    """Record, dispatch and mark the event in one transaction; commit is done here.

    A handler's exception rolls everything back, is written to the event log in a transaction
    of its own, and is raised again so that the endpoint answers 500 and Stripe retries.
    """
    row = db.session.scalar(
        select(StripeEvent).where(StripeEvent.event_id == event.id).with_for_update()
    )
    if row is not None and row.processed_at is not None:
        db.session.rollback()
        return Outcome.DUPLICATE
    if row is None:
        row = StripeEvent(
            event_id=event.id, type=event.type, stripe_created=from_timestamp(event.created)
        )
        db.session.add(row)
        try:
            db.session.flush()
        except IntegrityError:
            # The same event is being processed by a concurrent delivery right now.
            db.session.rollback()
            return Outcome.IN_PROGRESS
    handler = HANDLERS.get(event.type)
    outcome = Outcome.PROCESSED
    try:
        if handler is None:
            log.info(
                "Stripe event %s of type %s has no handler; acknowledged", event.id, event.type
            )
            outcome = Outcome.IGNORED
        else:
            handler(event)
        row.attempts += 1
        row.processed_at = utcnow()
        row.last_error = None
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        _record_failure(event, exc)
        raise
    return outcome


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
