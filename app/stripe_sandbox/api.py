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
    refunds,
    schedules,
    subscriptions,
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
        events,
    )
    for route in module.ROUTES
]
EXPANSIONS = checkout.EXPANSIONS | intents.EXPANSIONS
