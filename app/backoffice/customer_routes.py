"""A customer's page: profile, plan, entitlements and usage, credits, money, webhook events and
operator actions (their forms post to customer_action_routes.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import abort, make_response, render_template, request
from flask_wtf import FlaskForm
from sqlalchemy import Select, select
from werkzeug.wrappers import Response

from app.accounts.mirror import NEWEST_FIRST, Charge, Invoice, Subscription
from app.accounts.models import Customer
from app.backoffice.csv_export import csv_response, stream_rows, wants_csv
from app.backoffice.forms import (
    AdjustCreditsForm,
    CancelForm,
    ChangePlanForm,
    GrantCreditsForm,
    ResumeForm,
    ResyncForm,
)
from app.backoffice.margin import floor_percent
from app.backoffice.margin_data import customer_margins, floors
from app.backoffice.models import AuditEntry
from app.backoffice.routes import bp, page_of, requested_page
from app.backoffice.webhook_log import event_status
from app.billing.account import plan_choices
from app.billing.checkout import live_subscription
from app.billing.margin import cost_lines
from app.catalog import current_catalog
from app.entitlements.access import current_subscription
from app.entitlements.checks import check
from app.entitlements.credits import balances
from app.entitlements.models import UsageEvent
from app.entitlements.summary import usage_summary
from app.extensions import db
from app.webhooks.models import StripeEvent

# The newest of the customer's webhook events on its page; the log filtered to it has them all.
WEBHOOK_EVENTS_SHOWN = 20


@bp.route("/customers/<reference_id>")
def customer(reference_id: str) -> str:
    """Everything Tollgate knows of one customer, and what the operator may do for it."""
    return render_template(
        "backoffice/customer.html", **customer_view(customer_or_404(reference_id))
    )


@bp.route("/customers/<reference_id>/usage-events")
def usage_events(reference_id: str) -> Response:
    """The customer's usage events, newest first, a page at a time: the rows alone for htmx's
    "older" button, a page of their own without JavaScript, or all of them as CSV."""
    found = customer_or_404(reference_id)
    query = _usage_events_query(found)
    if wants_csv():
        return csv_response(
            f"usage-events-{found.reference_id}",
            ["recorded_at", "occurred_at", "event_name", "feature", "units", "idempotency_key"],
            _usage_event_rows(query),
        )
    page = requested_page()
    htmx = request.headers.get("HX-Request") == "true"
    template = "backoffice/_usage_events.html" if htmx else "backoffice/usage_events.html"
    response = make_response(
        render_template(template, customer=found, **usage_events_page(found, page))
    )
    response.vary.add("HX-Request")
    return response


def customer_or_404(reference_id: str) -> Customer:
    """The customer with the operator's reference id, or the 404 page."""
    found = db.session.scalar(select(Customer).where(Customer.reference_id == reference_id))
    if found is None:
        abort(404)
    return found


def catalog_pools() -> dict[str, str]:
    """Each credit pool the catalog grants into, with its denomination."""
    return {
        grant.pool: grant.denomination
        for plan in current_catalog().plans.values()
        for grant in plan.credits
    }


def action_forms(found: Customer, subscription: Subscription | None) -> dict[str, FlaskForm]:
    """The page's forms, each with its choices; a route replaces the one it was posted."""
    pools = sorted(catalog_pools())
    grant, adjust = GrantCreditsForm(), AdjustCreditsForm()
    grant.pool.choices = adjust.pool.choices = pools
    change = ChangePlanForm()
    plan = current_catalog().plan(subscription.plan_key) if subscription else None
    change.plan.choices = {
        choice.plan.key: choice.label for choice in (plan_choices(plan) if plan else [])
    }
    return {
        "form": grant,
        "adjust_form": adjust,
        "change_form": change,
        "cancel_form": CancelForm(),
        "resume_form": ResumeForm(),
        "resync_form": ResyncForm(),
    }


def customer_view(found: Customer, error: str | None = None, **posted: FlaskForm) -> dict[str, Any]:
    """What the customer page shows; ``posted`` replaces the form of that name (with its
    errors), ``error`` says why the action posted was not done."""
    newest_invoice = (Invoice.created.desc(), Invoice.id.desc())
    live = live_subscription(found)
    return {
        "customer": found,
        **action_forms(found, live),
        **posted,
        "action_error": error,
        "live": live,
        "subscriptions": db.session.scalars(
            select(Subscription).where(Subscription.customer_id == found.id).order_by(*NEWEST_FIRST)
        ).all(),
        **_entitlements(found),
        "usage": usage_summary(found),
        **usage_events_page(found, 1),
        "webhook_events": _webhook_events(found),
        "invoices": db.session.scalars(
            select(Invoice)
            .where(Invoice.customer_id == found.id)
            .order_by(*newest_invoice)
            .limit(24)
        ).all(),
        "charges": db.session.scalars(
            select(Charge)
            .where(Charge.customer_id == found.id)
            .order_by(Charge.created.desc())
            .limit(24)
        ).all(),
        "pools": balances(found.id),
        **_margins(found),
        "audit": db.session.execute(
            select(AuditEntry, Customer.reference_id)
            .join(Customer, Customer.id == AuditEntry.customer_id)
            .where(AuditEntry.customer_id == found.id)
            .order_by(AuditEntry.id.desc())
            .limit(20)
        ).all(),
    }


def _margins(found: Customer) -> dict[str, Any]:
    """The customer's last twelve periods' margins, newest first, and what its newest period's
    usage cost by feature and model."""
    margins = customer_margins(found.id)
    newest = margins[0] if margins else None
    floor = floors().get(newest.plan_key) if newest else None
    return {
        "margins": margins,
        "newest_period": newest,
        "period_costs": cost_lines(period_key=newest.period_key) if newest else [],
        "floor": floor_percent(floor) if floor is not None else None,
    }


def _entitlements(found: Customer) -> dict[str, Any]:
    """Each feature of the current plan as the JSON API's check answers it now (one unit)."""
    subscription = current_subscription(found.id)
    catalog = current_catalog()
    plan = catalog.plan(subscription.plan_key) if subscription else None
    features = list(plan.features) if plan else []
    return {
        "entitled_plan": plan,
        "entitlements": [(catalog.features[key], check(found, key)) for key in features],
    }


def _usage_events_query(found: Customer) -> Select[UsageEvent]:
    return (
        select(UsageEvent)
        .where(UsageEvent.customer_id == found.id)
        # Newest recorded first: ids grow with recording, and (customer_id, id) is indexed.
        .order_by(UsageEvent.id.desc())
    )


def usage_events_page(found: Customer, page: int) -> dict[str, Any]:
    """One page of the customer's usage events, and whether older ones follow."""
    rows, more = page_of(_usage_events_query(found), page)
    return {"events": [event for (event,) in rows], "events_page": page, "more_events": more}


def _usage_event_rows(query: Select[UsageEvent]) -> Iterator[list[Any]]:
    for (event,) in stream_rows(query):
        yield [
            event.recorded_at.isoformat(),
            event.occurred_at.isoformat(),
            event.event_name,
            event.feature_key,
            event.units,
            event.idempotency_key,
        ]


def _webhook_events(found: Customer) -> list[tuple[StripeEvent, str]]:
    """The newest events about the customer's Stripe objects, each with its status."""
    if found.stripe_customer_id is None:
        return []
    events = db.session.scalars(
        select(StripeEvent)
        .where(StripeEvent.stripe_customer_id == found.stripe_customer_id)
        .order_by(StripeEvent.id.desc())
        .limit(WEBHOOK_EVENTS_SHOWN)
    ).all()
    return [
        (event, event_status(event.type, event.processed_at, event.last_error)) for event in events
    ]
