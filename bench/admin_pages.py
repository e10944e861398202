"""Every page of the back office, found in the app's URL map, with its parameters filled from the
data: the bench and tests/backoffice/test_query_counts.py both measure these."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import Subquery, func, select
from werkzeug.routing import IntegerConverter, Rule

from app.accounts.mirror import Charge, Dispute, Invoice, Subscription
from app.accounts.models import Customer
from app.backoffice.models import AuditEntry
from app.entitlements.models import UsageEvent
from app.extensions import db
from app.webhooks.models import StripeEvent


def backoffice_rules(app: Flask) -> list[Rule]:
    """The GET routes of the ``backoffice`` blueprint, in URL order."""
    return sorted(
        (
            rule
            for rule in app.url_map.iter_rules()
            if rule.endpoint.startswith("backoffice.") and "GET" in (rule.methods or ())
        ),
        key=lambda rule: rule.rule,
    )


def sample_values() -> dict[str, tuple[str, int]]:
    """What a page's URL parameter is called, and the value (as a string, and as an id) to
    fill it with: the busiest customer (most usage events), a failed webhook event, ..."""
    counts = _usage_counts()
    busiest = db.session.execute(
        select(Customer.reference_id, Customer.id, Customer.stripe_customer_id)
        .join(counts, counts.c.customer_id == Customer.id)
        .order_by(counts.c.events.desc(), Customer.id)
        .limit(1)
    ).first()
    if busiest is None:
        busiest = db.session.execute(
            select(Customer.reference_id, Customer.id, Customer.stripe_customer_id)
            .order_by(Customer.id.desc())
            .limit(1)
        ).one()
    failed = db.session.execute(
        select(StripeEvent.event_id, StripeEvent.id)
        .order_by(StripeEvent.processed_at.is_(None).desc(), StripeEvent.id.desc())
        .limit(1)
    ).first()
    values: dict[str, tuple[str, int]] = {
        "reference_id": (busiest.reference_id, busiest.id),
        "customer_id": (busiest.stripe_customer_id or busiest.reference_id, busiest.id),
    }
    if failed is not None:
        values["event_id"] = (failed.event_id, failed.id)
    for name, column, key in (
        ("invoice_id", Invoice.stripe_invoice_id, Invoice.id),
        ("charge_id", Charge.stripe_charge_id, Charge.id),
        ("dispute_id", Dispute.stripe_dispute_id, Dispute.id),
        ("subscription_id", Subscription.stripe_subscription_id, Subscription.id),
        ("entry_id", AuditEntry.id, AuditEntry.id),
    ):
        row = db.session.execute(select(column, key).order_by(key.desc()).limit(1)).first()
        if row is not None:
            values[name] = (str(row[0]), int(row[1]))
    return values


def _usage_counts() -> Subquery:
    return (
        select(UsageEvent.customer_id, func.count().label("events"))
        .group_by(UsageEvent.customer_id)
        .subquery()
    )


def page_path(app: Flask, rule: Rule, values: dict[str, tuple[str, int]]) -> str:
    """The rule's URL with each parameter filled; a parameter with no sample says so."""
    arguments: dict[str, Any] = {}
    for name in sorted(rule.arguments):
        if name not in values:
            raise LookupError(
                f"{rule.rule} ({rule.endpoint}) takes <{name}>, which bench/admin_pages.py "
                "sample_values() has no value for: add one"
            )
        text, number = values[name]
        # werkzeug keeps a rule's converters only there
        converter = rule._converters.get(name)
        arguments[name] = number if isinstance(converter, IntegerConverter) else text
    return app.url_map.bind("localhost").build(rule.endpoint, arguments)
