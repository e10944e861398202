"""Forwarding billable overage to Stripe Meters: batched, committed, then sent exactly once."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select

from app.accounts.models import Customer
from app.billing.gateway import GatewayError, gateway
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
    """Worker: batch unforwarded overage, commit the batches, then send each; owns its commits."""
    _assign_batches(limit)
    db.session.commit()
    report = ForwardReport()
    pending = db.session.scalars(
        select(OverageBatch)
        .where(OverageBatch.forwarded_at.is_(None))
        .order_by(OverageBatch.id)
        .limit(limit)
    ).all()
    for batch in pending:
        customer = db.session.get_one(Customer, batch.customer_id)
        sent = SentBatch(batch.identifier, customer.reference_id, batch.event_name, batch.units)
        batch.attempts += 1
        try:
            gateway().report_usage(
                event_name=batch.event_name,
                stripe_customer_id=customer.stripe_customer_id or "",
                value=batch.units,
                identifier=batch.identifier,
                at=int(batch.at.timestamp()),
            )
        except GatewayError as exc:
            batch.last_error = exc.code or str(exc)
            report.failed.append((sent, batch.last_error))
        else:
            batch.forwarded_at = now()
            batch.last_error = None
            report.sent.append(sent)
        db.session.commit()
    return report


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
