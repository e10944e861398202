"""The webhook event log: every Stripe event received, what became of it, and its replay."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import Select, select
from werkzeug.wrappers import Response

from app.accounts.models import Customer
from app.backoffice.actions import record
from app.backoffice.csv_export import csv_link_args, csv_response, stream_rows, wants_csv
from app.backoffice.forms import ReplayForm
from app.backoffice.routes import bp, page_of, requested_page
from app.backoffice.webhook_log import STATUSES, event_status, status_condition
from app.extensions import db
from app.webhooks.models import StripeEvent
from app.webhooks.retries import replay_events

CSV_HEADER = [
    "event_id",
    "type",
    "status",
    "stripe_customer_id",
    "customer_reference_id",
    "object_id",
    "stripe_created",
    "received_at",
    "processed_at",
    "attempts",
    "next_attempt_at",
    "dead_at",
    "last_error",
]


@bp.route("/webhooks")
def webhooks() -> Response | str:
    """The event log, newest first, filtered by type, status and customer, a page at a time."""
    filters = {
        "type": request.args.get("type", "").strip(),
        "status": request.args.get("status", "").strip(),
        "customer": request.args.get("customer", "").strip(),
    }
    query = _logged_events(filters["type"], filters["status"], filters["customer"])
    if wants_csv():
        return csv_response("webhook-events", CSV_HEADER, _csv_rows(query))
    page = requested_page()
    rows, more = page_of(query, page)
    return render_template(
        "backoffice/webhooks.html",
        events=[(event, reference, _status(event)) for event, reference in rows],
        more=more,
        page=page,
        filters=filters,
        filter_args={name: value for name, value in filters.items() if value},
        csv_args=csv_link_args(),
        statuses=STATUSES,
        types=db.session.scalars(select(StripeEvent.type).distinct().order_by(StripeEvent.type)),
    )


@bp.route("/webhooks/<event_id>")
def webhook_event(event_id: str) -> str:
    """One event, with its error and attempts, and the form to replay it."""
    return _event_page(event_id, ReplayForm())[0]


@bp.post("/webhooks/<event_id>/replay")
def replay_webhook(event_id: str) -> Response | tuple[str, int]:
    """Apply the event again through its handler now (dead or processed ones too), as
    `flask webhooks replay` does, with the status before and after in the audit log."""
    form = ReplayForm()
    if not form.validate_on_submit():
        return _event_page(event_id, form, status=400)
    event, customer = _event_and_customer(event_id)
    before = {"status": _status(event), "attempts": event.attempts}
    db.session.rollback()  # nothing is held while the handler reads Stripe
    report = replay_events([event_id], again=True)
    event, customer = _event_and_customer(event_id)
    after = {"status": _status(event), "attempts": event.attempts, "error": event.last_error}
    record(
        current_user,
        "replay_webhook",
        customer,
        f"event {event_id} ({event.type})",
        before,
        after,
        form.reason.data.strip(),
    )
    db.session.commit()
    if report.failed:
        flash(f"The replay failed again: {report.failed[0][1]}", "error")
    else:
        flash(f"Replayed {event_id}: {after['status']}.", "success")
    return redirect(url_for("backoffice.webhook_event", event_id=event_id))


def _logged_events(event_type: str, status: str, customer: str) -> Select[StripeEvent, str]:
    """The log's query: each event with its customer's reference id, newest first."""
    query = select(StripeEvent, Customer.reference_id).outerjoin(
        Customer, Customer.stripe_customer_id == StripeEvent.stripe_customer_id
    )
    if event_type:
        query = query.where(StripeEvent.type == event_type)
    if status in STATUSES:
        query = query.where(status_condition(status))
    if customer:
        query = query.where(StripeEvent.stripe_customer_id == customer)
    return query.order_by(StripeEvent.id.desc())


def _status(event: StripeEvent) -> str:
    return event_status(event.type, event.processed_at, event.last_error)


def _csv_rows(query: Select[StripeEvent, str]) -> Iterator[list[Any]]:
    for event, reference in stream_rows(query):
        yield [
            event.event_id,
            event.type,
            _status(event),
            event.stripe_customer_id,
            reference,
            event.object_id,
            event.stripe_created,
            event.received_at,
            event.processed_at,
            event.attempts,
            event.next_attempt_at,
            event.dead_at,
            event.last_error,
        ]


def _event_and_customer(event_id: str) -> tuple[StripeEvent, Customer | None]:
    row = db.session.execute(
        select(StripeEvent, Customer)
        .outerjoin(Customer, Customer.stripe_customer_id == StripeEvent.stripe_customer_id)
        .where(StripeEvent.event_id == event_id)
        .execution_options(populate_existing=True)
    ).first()
    if row is None:
        abort(404)
    return row[0], row[1]


def _event_page(event_id: str, form: ReplayForm, status: int = 200) -> tuple[str, int]:
    event, customer = _event_and_customer(event_id)
    page = render_template(
        "backoffice/webhook_event.html",
        event=event,
        customer=customer,
        status=_status(event),
        form=form,
    )
    return page, status
