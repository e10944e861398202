"""Usage forwarded to Stripe Meters, checked against what Stripe counted.

For each customer and meter, each closed UTC day of the last 35 days: what Tollgate sent (its
forwarded meter events) against Stripe's meter event summary for that day. Stripe short (an
event it dropped, a send lost before it counted) gets the missing units sent again, under an
identifier made from the customer, meter, day and both totals: sent twice, Stripe counts it
once, and a later shortfall gets an identifier of its own. Stripe over (a duplicate sent by
something other than Tollgate) is reported, never taken back: only the operator can judge it.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.accounts.models import Customer, utcnow
from app.billing.gateway import gateway
from app.billing.models import Difference
from app.clock import now
from app.entitlements.models import OverageBatch
from app.extensions import db

log = logging.getLogger(__name__)

DAY = timedelta(days=1)
# Stripe takes meter events up to 35 days old; a resend must fall inside its own day.
CHECKED_DAYS = 34
# Stripe aggregates meter events asynchronously: a day is compared once it has been over this
# long, so that what was sent just before midnight is counted.
SETTLED_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class UsageDifference:
    """One customer's meter on one day: units Tollgate sent and Stripe counted."""

    customer_reference_id: str
    event_name: str
    day: datetime
    tollgate: int
    stripe: int
    resent: bool

    def as_record(self) -> Difference:
        """The run's record of it: repaired when the missing units were sent."""
        return Difference(
            object_type="meter_usage",
            object_id=f"{self.customer_reference_id}/{self.event_name}/{self.day:%Y-%m-%d}",
            field="units",
            tollgate_value=str(self.tollgate),
            stripe_value=str(self.stripe),
            repaired_at=utcnow() if self.resent else None,
        )


@dataclass(frozen=True)
class _Sent:
    customer_id: int
    reference_id: str
    stripe_customer_id: str
    event_name: str


def check_meter_totals() -> list[UsageDifference]:
    """Compare each closed day's totals and send what Stripe is missing; owns its commits."""
    latest_end = _day_start(now() - SETTLED_AFTER)
    earliest = latest_end - CHECKED_DAYS * DAY
    sent = _sent_by_day(earliest, latest_end)
    if not sent:
        return []
    stripe_gateway = gateway()
    meters = {meter.event_name: meter.id for meter in stripe_gateway.meters()}
    differences: list[UsageDifference] = []
    for key, ours in sent.items():
        meter_id = meters.get(key.event_name)
        if meter_id is None:
            log.warning("no Stripe meter for %s: its usage cannot be checked", key.event_name)
            continue
        theirs = stripe_gateway.meter_event_totals(
            meter_id, key.stripe_customer_id, int(earliest.timestamp()), int(latest_end.timestamp())
        )
        for day in sorted(set(ours) | {datetime.fromtimestamp(t, UTC) for t in theirs}):
            counted = theirs.get(int(day.timestamp()), 0)
            sent_units = ours.get(day, 0)
            if counted != sent_units:
                differences.append(_settle_day(key, day, sent_units, counted))
    return differences


def _sent_by_day(start: datetime, end: datetime) -> dict[_Sent, dict[datetime, int]]:
    """Units Tollgate forwarded in [start, end), by customer and meter, then by UTC day."""
    rows = db.session.execute(
        select(
            OverageBatch.customer_id,
            Customer.reference_id,
            Customer.stripe_customer_id,
            OverageBatch.event_name,
            OverageBatch.at,
            OverageBatch.units,
        )
        .join(Customer, Customer.id == OverageBatch.customer_id)
        .where(
            OverageBatch.forwarded_at.is_not(None),
            OverageBatch.at >= start,
            OverageBatch.at < end,
            Customer.stripe_customer_id.is_not(None),
        )
    ).all()
    db.session.rollback()
    totals: dict[_Sent, dict[datetime, int]] = defaultdict(lambda: defaultdict(int))
    for customer_id, reference_id, stripe_customer_id, event_name, at, units in rows:
        key = _Sent(customer_id, reference_id, stripe_customer_id or "", event_name)
        totals[key][_day_start(at)] += units
    return totals


def _settle_day(key: _Sent, day: datetime, ours: int, theirs: int) -> UsageDifference:
    """Send what Stripe is missing for the day; report what it has beyond ours."""
    if theirs > ours:
        log.warning(
            "Stripe counted %s %s for %s on %s; Tollgate sent %s",
            theirs,
            key.event_name,
            key.reference_id,
            f"{day:%Y-%m-%d}",
            ours,
        )
        return UsageDifference(key.reference_id, key.event_name, day, ours, theirs, resent=False)
    seed = f"{key.customer_id}:{key.event_name}:{day:%Y-%m-%d}:{theirs}:{ours}"
    gateway().report_usage(
        event_name=key.event_name,
        stripe_customer_id=key.stripe_customer_id,
        value=ours - theirs,
        identifier=f"tollgate_resend_{hashlib.sha256(seed.encode()).hexdigest()[:40]}",
        at=int((day + DAY).timestamp()) - 1,
    )
    return UsageDifference(key.reference_id, key.event_name, day, ours, theirs, resent=True)


def _day_start(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
