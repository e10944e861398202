"""The route table of every Stripe v1 resource the sandbox serves."""

from __future__ import annotations

from .resources import (
    billing,
    catalog,
    charges,
    checkout,
    disputes,
    events,
    intents,
    invoices,
    payments,
    portal,
    refunds,
    schedules,
    subscriptions,
    tax_ids,
)

ROUTES = [
    route
    for module in (
        catalog,
        checkout,
        subscriptions,
        schedules,
        invoices,
        intents,
        charges,
        refunds,
        disputes,
        payments,
        billing,
        portal,
        tax_ids,
        events,
    )
    for route in module.ROUTES
]
EXPANSIONS = checkout.EXPANSIONS | intents.EXPANSIONS | tax_ids.EXPANSIONS
