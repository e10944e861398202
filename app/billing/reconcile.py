"""`flask stripe reconcile` and the nightly job: find where the mirror drifted from Stripe and
repair it through the one sync path, keeping a record of each difference.

A webhook can be lost for good: the endpoint down past Stripe's three days of retries, a change
made in Stripe's dashboard while the endpoint was misconfigured. Stripe's event list keeps 30
days of what changed, so a run reads the events since the last run that finished, re-reads each
object they name (and each charge created since) as the webhook handler would, and mirrors it.
Whatever the sync changes is a difference: what Tollgate had, what Stripe has. Once a week (or
with ``--full``) every live subscription is read as well, for changes older than the events
kept. Then the usage forwarded to Stripe Meters is checked against Stripe's totals
(usage_reconciliation.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update

from app.accounts.mirror import LIVE_STATUSES, Subscription
from app.accounts.models import utcnow
from app.billing.drift import Change, watching_changes
from app.billing.event_handlers import HANDLERS, Handler
from app.billing.gateway import GatewayError, gateway
from app.billing.listing import Sleep, every_object
from app.billing.models import Difference, ReconciliationRun, RunStatus
from app.billing.sync import mirror
from app.billing.usage_reconciliation import check_meter_totals
from app.clock import timestamp
from app.extensions import db

log = logging.getLogger(__name__)

# Stripe keeps events for 30 days: a first run (or one after a long gap) reads them all.
EVENTS_KEPT = timedelta(days=30)
FULL_SWEEP_EVERY = timedelta(days=7)


@dataclass(frozen=True)
class Target:
    """One object to read again, and the handler that mirrors its kind."""

    handler: Handler
    object_id: str


def reconcile(*, full_sweep: bool | None = None, sleep: Sleep = time.sleep) -> ReconciliationRun:
    """Compare, repair and record one run; owns its commits (none open while Stripe answers).

    ``full_sweep`` None: the weekly sweep of live subscriptions happens when the last one is
    older than a week.
    """
    since = _cursor_of_last_good_run()
    if full_sweep is None:
        full_sweep = _sweep_due()
    run = ReconciliationRun(started_at=utcnow(), status=RunStatus.RUNNING, full_sweep=full_sweep)
    db.session.add(run)
    db.session.commit()
    run_id = run.id
    try:
        targets, newest = _changed_since(since, sleep)
        if full_sweep:
            targets.update(dict.fromkeys(_live_subscriptions()))
        failures = _repair_each(run_id, list(targets))
        usage = check_meter_totals()
    except GatewayError as exc:
        return _finish(run_id, RunStatus.FAILED, since, error=f"{exc.detail}")
    _record(run_id, [difference.as_record() for difference in usage])
    return _finish(run_id, RunStatus.FAILED if failures else None, newest or since)


def _cursor_of_last_good_run() -> int:
    """The events cursor to read after: the last run that did not fail, else 30 days ago."""
    cursor = db.session.scalar(
        select(ReconciliationRun.events_cursor)
        .where(ReconciliationRun.status.in_([RunStatus.CLEAN, RunStatus.REPAIRED]))
        .order_by(ReconciliationRun.id.desc())
        .limit(1)
    )
    db.session.rollback()
    return cursor if cursor is not None else timestamp() - int(EVENTS_KEPT.total_seconds())


def _sweep_due() -> bool:
    last = db.session.scalar(
        select(ReconciliationRun.started_at)
        .where(ReconciliationRun.full_sweep.is_(True), ReconciliationRun.status != RunStatus.FAILED)
        .order_by(ReconciliationRun.id.desc())
        .limit(1)
    )
    db.session.rollback()
    return last is None or utcnow() - last >= FULL_SWEEP_EVERY


def _changed_since(since: int, sleep: Sleep) -> tuple[dict[Target, None], int | None]:
    """Each object an event since ``since`` names (once, in the order Stripe lists them), each
    charge created since, and the newest event's time. The second ``since`` itself is read
    again: events of that second may have come after the last run read it, and reading one
    twice only finds it unchanged."""
    targets: dict[Target, None] = {}
    newest: int | None = None
    stripe_gateway = gateway()
    after = {"created": {"gte": since}}
    for event in every_object(stripe_gateway, "events", after, sleep):
        newest = max(newest or event.created, event.created)
        handler = HANDLERS.get(event.type)
        if handler is not None:
            targets[Target(handler, event.data.object["id"])] = None
    charge_handler = HANDLERS["charge.succeeded"]
    for charge in every_object(stripe_gateway, "charges", after, sleep):
        targets[Target(charge_handler, charge.id)] = None
    return targets, newest


def _live_subscriptions() -> Iterator[Target]:
    handler = HANDLERS["customer.subscription.updated"]
    stripe_ids = db.session.scalars(
        select(Subscription.stripe_subscription_id)
        .where(Subscription.status.in_(LIVE_STATUSES))
        .order_by(Subscription.id)
    ).all()
    db.session.rollback()
    for stripe_id in stripe_ids:
        yield Target(handler, stripe_id)


def _repair_each(run_id: int, targets: list[Target]) -> int:
    """Read and mirror each target, recording what changed; the number Stripe did not answer."""
    failures = 0
    for target in targets:
        try:
            fetched = target.handler.fetch(target.object_id)
        except GatewayError as exc:
            log.warning("reconciling %s failed: %s", target.object_id, exc.detail)
            failures += 1
            continue
        with watching_changes() as changes:
            mirror(fetched, target.handler.sync)
        _record(run_id, [_as_record(change) for change in changes])
    db.session.execute(
        update(ReconciliationRun)
        .where(ReconciliationRun.id == run_id)
        .values(objects_checked=len(targets), failures=failures)
    )
    db.session.commit()
    return failures


def _as_record(change: Change) -> Difference:
    return Difference(
        object_type=change.object_type,
        object_id=change.object_id,
        field=change.field,
        tollgate_value=change.before,
        stripe_value=change.after,
        repaired_at=utcnow(),
    )


def _record(run_id: int, differences: list[Difference]) -> None:
    """Keep the run's differences, each marked recurring if the last run had it too."""
    if not differences:
        return
    previous_run = db.session.scalar(
        select(ReconciliationRun.id)
        .where(ReconciliationRun.id < run_id, ReconciliationRun.status != RunStatus.RUNNING)
        .order_by(ReconciliationRun.id.desc())
        .limit(1)
    )
    seen_before = {
        (object_type, object_id, field)
        for object_type, object_id, field in db.session.execute(
            select(Difference.object_type, Difference.object_id, Difference.field).where(
                Difference.run_id == previous_run
            )
        )
    }
    for difference in differences:
        difference.run_id = run_id
        difference.recurring = (
            difference.object_type,
            difference.object_id,
            difference.field,
        ) in seen_before
        db.session.add(difference)
    db.session.commit()


def _finish(
    run_id: int, status: RunStatus | None, cursor: int | None, error: str | None = None
) -> ReconciliationRun:
    run = db.session.get(ReconciliationRun, run_id)
    assert run is not None
    if status is None:
        status = RunStatus.REPAIRED if run.differences else RunStatus.CLEAN
    run.status, run.events_cursor, run.error = status, cursor, error
    run.finished_at = utcnow()
    db.session.commit()
    return run


def recent_runs(limit: int = 10) -> list[ReconciliationRun]:
    """The last runs, newest first."""
    return list(
        db.session.scalars(
            select(ReconciliationRun).order_by(ReconciliationRun.id.desc()).limit(limit)
        )
    )
