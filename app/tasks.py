"""The worker: what runs later, and when (Huey, run by ``flask worker``).

A task is a thin door: it opens the app, calls the one service a command also calls, and lets
the service own its commits. Each periodic job claims its slot first (app/schedule.py), so with
a worker on every host it still runs once per slot; and each is a sweep over what the database
says is owed, so a slot lost with its worker is made up by the next.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from huey import crontab

from app.billing.margin_floor import settle_margin_floors
from app.billing.overage_forwarding import forward_overage
from app.billing.reconcile import reconcile
from app.billing.revenue import take_snapshot
from app.clock import now
from app.config import missing_production_settings
from app.extensions import db
from app.metrics import record_task_outcomes
from app.queue import queue
from app.schedule import day_slot, minute_slot, run_once_per_slot, wall_clock
from app.webhooks.retries import retry_due_events

__all__ = ["queue", "worker_command"]

log = logging.getLogger(__name__)
# Each task's outcome (complete, error, ...) is counted for /metrics.
record_task_outcomes(queue)


class _WorkerApp:
    """The app the worker's threads run tasks in, set when ``flask worker`` starts."""

    app: Flask | None = None


def _once_per_slot(job: str, lease: timedelta, slot: Callable[[], str]) -> Callable[..., Any]:
    """Run the decorated sweep in the worker's app, once per slot across every worker."""

    def decorate(sweep: Callable[[], object]) -> Callable[[], bool]:
        @functools.wraps(sweep)
        def run() -> bool:
            app = _WorkerApp.app or current_app
            with app.app_context():
                return run_once_per_slot(job, slot(), lease, sweep)

        return run

    return decorate


# The schedule. Times are UTC; a slot's lease is how long a run may take before another
# worker presumes it dead and takes the slot over.


# Every minute: overage reaches Stripe within a minute or two of being used, so the customer's
# invoice preview in Stripe is current, and a Stripe outage costs at most a few minutes' lag.
@queue.periodic_task(crontab(minute="*"), name="forward_overage")
@_once_per_slot("forward_overage", timedelta(minutes=5), lambda: minute_slot(wall_clock()))
def forward_overage_task() -> None:
    forward_overage()


# Every minute, like the forwarder that sends what it queues: what restores a period's margin
# floor reaches Stripe within a minute or two of the cost that called for it, so Stripe's invoice
# preview soon shows what the account page does, and only a period's last minute of cost can
# miss the period's invoice.
@queue.periodic_task(crontab(minute="*"), name="settle_margin_floors")
@_once_per_slot("settle_margin_floors", timedelta(minutes=5), lambda: minute_slot(wall_clock()))
def settle_margin_floors_task() -> None:
    settle_margin_floors()


# Every minute: a failed event is due again one minute after its first failure, doubling after
# that (app/webhooks/processing.py); a delivery lost with its process is due after five.
@queue.periodic_task(crontab(minute="*"), name="retry_webhook_events")
@_once_per_slot("retry_webhook_events", timedelta(minutes=5), lambda: minute_slot(wall_clock()))
def retry_webhook_events_task() -> None:
    retry_due_events()


# Nightly at 02:00 UTC, the quietest hour for most of the operator's customers: the mirror is
# compared with Stripe and repaired (app/billing/reconcile.py), to catch what a lost webhook
# left behind; weekly, every live subscription is read too. Scheduled at 02:00 and again every
# 15 minutes until 06:00, so a night whose 02:00 run died (a deploy, a crashed worker) still
# gets its run: the day's slot is taken once.
@queue.periodic_task(crontab(minute="*/15", hour="2-5"), name="nightly_reconcile")
@_once_per_slot("nightly_reconcile", timedelta(hours=1), lambda: day_slot(wall_clock()))
def nightly_reconcile_task() -> None:
    reconcile()


# Daily just after midnight UTC, and again every 15 minutes that hour in case a deploy took the
# first slot's worker: each plan's recurring revenue as the day starts is kept, so the revenue
# page's history is what was true then, whatever the mirror says later.
@queue.periodic_task(crontab(minute="5,20,35,50", hour="0"), name="revenue_snapshot")
@_once_per_slot("revenue_snapshot", timedelta(hours=1), lambda: day_slot(wall_clock()))
def revenue_snapshot_task() -> None:
    take_snapshot(now().date())
    db.session.commit()


@click.command("worker")
@click.option(
    "--threads", default=2, show_default=True, help="Tasks run at once by this worker process."
)
@with_appcontext
def worker_command(threads: int) -> None:
    """Run the worker: the queue's tasks and their schedule. Stops after its tasks in flight
    on SIGTERM or Ctrl-C."""
    missing = missing_production_settings(os.environ)
    if missing:
        raise click.ClickException(
            f"the worker will not run against real Stripe without {' and '.join(missing)} set."
        )
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    _WorkerApp.app = app
    consumer = queue.create_consumer(
        workers=threads,
        worker_type="thread",
        periodic=True,
        # SIGTERM (a deploy, honcho's Ctrl-C) lets tasks in flight finish; a second one stops.
        graceful_signal="TERM",
        shutdown_timeout=20,
    )
    log.info("worker started: %d threads, queue %s", threads, app.config["TOLLGATE_QUEUE_URL"])
    consumer.run()
