"""What became of each Stripe event, in words and as a filter of the event log.

- processed: applied through its handler;
- ignored: acknowledged, as no handler takes its type (billing/event_handlers.py HANDLERS);
- failed: its last attempt failed; the worker retries it later, or it is dead (after the last
  attempt) and waits for an operator's replay;
- pending: received and not applied yet (a delivery at work, or lost with its process, which
  the worker's sweep takes up).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_

from app.billing.event_handlers import HANDLERS
from app.webhooks.models import StripeEvent

STATUSES = ("processed", "failed", "ignored", "pending")


def event_status(event_type: str, processed_at: datetime | None, last_error: str | None) -> str:
    """One event's status (see the module's docstring)."""
    if processed_at is not None:
        return "processed" if event_type in HANDLERS else "ignored"
    return "failed" if last_error is not None else "pending"


def status_condition(status: str) -> ColumnElement[bool]:
    """The events with ``status``, in SQL."""
    handled = StripeEvent.type.in_(sorted(HANDLERS))
    processed = StripeEvent.processed_at.is_not(None)
    return {
        "processed": and_(processed, handled),
        "ignored": and_(processed, ~handled),
        "failed": and_(StripeEvent.processed_at.is_(None), StripeEvent.last_error.is_not(None)),
        "pending": and_(StripeEvent.processed_at.is_(None), StripeEvent.last_error.is_(None)),
    }[status]
