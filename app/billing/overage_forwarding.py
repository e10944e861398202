"""Sending meter events to Stripe: billable overage, batched, and an in-arrears plan's fee.

Each event is committed (an OverageBatch row with a fixed identifier) before it is sent, and
sent outside any transaction by the worker's forwarder. Several forwarders (a worker on every
host) each claim a batch before sending it, so each is sent once; Stripe counts an identifier
once besides, so the rare resend after a forwarder died mid-send is harmless.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, CursorResult, or_, select, update

from app.accounts.models import Customer, utcnow
from app.billing.gateway import WORKER_RETRIES, GatewayError, gateway
from app.clock import now
from app.entitlements.models import OverageBatch, OverageOutbox
from app.extensions import db

# Stripe refuses meter events older than 35 days; a backlog that old is billed as of the window.
OLDEST_METER_EVENT = timedelta(days=34)


@dataclass(frozen=True)
class SentBatch:
    """One meter event: a customer's overage of one meter in one period."""

    identifier: str
    customer_reference_id: str
    event_name: str
    units: int


@dataclass(frozen=True)
class ForwardReport:
    """What a forwarding run sent, and what Stripe refused (retried on the next run)."""

    sent: list[SentBatch] = field(default_factory=list)
    failed: list[tuple[SentBatch, str]] = field(default_factory=list)


def forward_overage(limit: int = 1000) -> ForwardReport:
    """Worker: batch unforwarded overage, commit the batches, then send each unsent batch (the
    plans' fees too) that no other forwarder holds; owns its commits."""
    _assign_batches(limit)
    db.session.commit()
    return _send(limit)


def queue_meter_event(
    customer_id: int, *, event_name: str, identifier: str, units: int, at: datetime
) -> None:
    """Queue one meter event for the forwarder, once: an identifier is queued once."""
    queued = db.session.scalar(select(OverageBatch.id).where(OverageBatch.identifier == identifier))
    if queued is None:
        db.session.add(
            OverageBatch(
                identifier=identifier,
                customer_id=customer_id,
                event_name=event_name,
                units=units,
                at=at,
                created_at=now(),
            )
        )
        db.session.flush()


def _send(limit: int) -> ForwardReport:
    """Claim and send each unsent batch, each claim and result committed on its own; no
    transaction is open while Stripe answers."""
    unsent = db.session.execute(
        select(
            OverageBatch.id,
            OverageBatch.identifier,
            OverageBatch.event_name,
            OverageBatch.units,
            OverageBatch.at,
            Customer.reference_id,
            Customer.stripe_customer_id,
        )
        .join(Customer, Customer.id == OverageBatch.customer_id)
        .where(OverageBatch.forwarded_at.is_(None), _unclaimed(utcnow()))
        .order_by(OverageBatch.id)
        .limit(limit)
    ).all()
    db.session.rollback()
    report = ForwardReport()
    for batch_id, identifier, event_name, units, at, reference_id, stripe_customer_id in unsent:
        if not _claim(batch_id):
            continue
        sent = SentBatch(identifier, reference_id, event_name, units)
        error: str | None = None
        try:
            gateway().report_usage(
                event_name=event_name,
                stripe_customer_id=stripe_customer_id or "",
                value=units,
                identifier=identifier,
                at=int(at.timestamp()),
            )
        except GatewayError as exc:
            error = exc.code or exc.detail  # for the operator: a missing permission named
            report.failed.append((sent, error))
        else:
            report.sent.append(sent)
        db.session.execute(
            update(OverageBatch)
            .where(OverageBatch.id == batch_id)
            .values(
                attempts=OverageBatch.attempts + 1,
                last_error=error,
                forwarded_at=None if error else now(),
                claimed_until=None,
            )
        )
        db.session.commit()
    return report


def _unclaimed(at: datetime) -> ColumnElement[bool]:
    return or_(OverageBatch.claimed_until.is_(None), OverageBatch.claimed_until < at)


def claim_length() -> timedelta:
    """How long a forwarder holds a batch it is sending: twice the longest a Stripe call can
    take with its retries (STRIPE_WORKER_TIMEOUT_SECONDS, 30 s, tried four times: 4 minutes),
    so that only a dead forwarder's claim lapses."""
    longest_send = current_app.config["STRIPE_WORKER_TIMEOUT_SECONDS"] * (WORKER_RETRIES + 1)
    return timedelta(seconds=2 * longest_send)


def _claim(batch_id: int) -> bool:
    """Hold the batch for this forwarder, unless sent or held by another; one statement, so
    two forwarders cannot both take it. Commits."""
    at = utcnow()
    claimed: CursorResult[Any] = db.session.execute(  # type: ignore[assignment]
        update(OverageBatch)
        .where(OverageBatch.id == batch_id, OverageBatch.forwarded_at.is_(None), _unclaimed(at))
        .values(claimed_until=at + claim_length())
    )
    db.session.commit()
    return bool(claimed.rowcount)


def _assign_batches(limit: int) -> None:
    """Put unbatched outbox rows into one batch per customer, meter and period."""
    rows = db.session.scalars(
        select(OverageOutbox)
        .where(OverageOutbox.batch_id.is_(None))
        .order_by(OverageOutbox.id)
        .limit(limit)
        # Two workers never batch the same rows; each takes the ones the other left.
        .with_for_update(skip_locked=True)
    ).all()
    groups: dict[tuple[int, str, str], list[OverageOutbox]] = defaultdict(list)
    for row in rows:
        groups[row.customer_id, row.event_name, row.period_key].append(row)
    created = now()
    for (customer_id, event_name, _period), members in groups.items():
        batch = OverageBatch(
            # Random but fixed once committed: every retry of this batch sends the same one.
            identifier=f"tollgate_overage_{uuid.uuid4().hex}",
            customer_id=customer_id,
            event_name=event_name,
            units=sum(row.units for row in members),
            at=max(max(row.occurred_at for row in members), created - OLDEST_METER_EVENT),
            created_at=created,
        )
        db.session.add(batch)
        for row in members:
            row.batch = batch
    db.session.flush()
