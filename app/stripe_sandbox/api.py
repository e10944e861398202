"""The route table of every Stripe v1 resource the sandbox serves."""

from __future__ import annotations

from .resources import (
    billing,
    catalog,
    checkout,
    events,
    invoices,
    payments,
    schedules,
    subscriptions,
)

ROUTES = [
    route
    for module in (catalog, checkout, subscriptions, schedules, invoices, payments, billing, events)
    for route in module.ROUTES
]
EXPANSIONS = checkout.EXPANSIONS
