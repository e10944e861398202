"""The worker's sweep of the event log: events whose delivery failed or was lost, applied again.

Each is fetched from Stripe as it is now and mirrored through the same path as a delivery, so a
retry, a late delivery from Stripe and the sweep may meet without harm.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select, update

from app.clock import now
from app.extensions import db
from app.webhooks.models import StripeEvent
from app.webhooks.processing import Outcome, apply_event

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryReport:
    """What a sweep did: events now processed, and those that failed again (with the error)."""

    processed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def retry_due_events(limit: int = 100) -> RetryReport:
    """Apply again every unprocessed, living event whose next attempt is due. Owns its commits."""
    due = db.session.execute(
        select(StripeEvent.event_id, StripeEvent.type, StripeEvent.object_id)
        .where(
            StripeEvent.processed_at.is_(None),
            StripeEvent.dead_at.is_(None),
            StripeEvent.object_id.is_not(None),
            StripeEvent.next_attempt_at <= now(),
        )
        .order_by(StripeEvent.next_attempt_at)
        .limit(limit)
    ).all()
    db.session.rollback()
    return _apply_each(due)


def failed_event_ids() -> list[str]:
    """Every event not processed yet, dead or waiting for its next attempt, oldest first."""
    ids = db.session.scalars(
        select(StripeEvent.event_id)
        .where(StripeEvent.processed_at.is_(None))
        .order_by(StripeEvent.id)
    ).all()
    db.session.rollback()
    return list(ids)


def replay_events(event_ids: Sequence[str], *, again: bool = False) -> RetryReport:
    """An operator's replay: apply the named events again now, dead ones included, and with
    ``again`` processed ones too (each is re-read from Stripe, so a replay only repairs)."""
    known = db.session.execute(
        select(StripeEvent.event_id, StripeEvent.type, StripeEvent.object_id).where(
            StripeEvent.event_id.in_(event_ids), StripeEvent.object_id.is_not(None)
        )
    ).all()
    db.session.execute(
        update(StripeEvent).where(StripeEvent.event_id.in_(event_ids)).values(dead_at=None)
    )
    db.session.commit()
    report = _apply_each(known, count_repeats=again)
    found = {event_id for event_id, _, _ in known}
    report.failed.extend(
        (event_id, "unknown event") for event_id in event_ids if event_id not in found
    )
    return report


def _apply_each(
    events: Sequence[tuple[str, str, str | None]], *, count_repeats: bool = False
) -> RetryReport:
    report = RetryReport()
    for event_id, event_type, object_id in events:
        try:
            outcome = apply_event(event_id, event_type, object_id or "")
        except Exception as exc:
            log.warning("Stripe event %s (%s) failed again: %s", event_id, event_type, exc)
            report.failed.append((event_id, str(exc)))
        else:
            if count_repeats or outcome is not Outcome.DUPLICATE:
                report.processed.append(event_id)
    return report
