"""Every object the sandbox returns has every top-level field of Stripe's published sample."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import stripe

from app.stripe_sandbox import Sandbox

from .conftest import Catalog, Server, checkout_url, pay

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "stripe" / "fixtures3.json"


@pytest.fixture(scope="module")
def samples() -> dict[str, Any]:
    if not FIXTURES.exists():
        pytest.skip(f"Stripe's sample objects are not at {FIXTURES} (outside the repo)")
    return json.loads(FIXTURES.read_text())["resources"]


@pytest.fixture
def objects(
    client: stripe.StripeClient, server: Server, catalog: Catalog, sandbox: Sandbox
) -> dict[str, dict[str, Any]]:
    """One of each object type, fetched as raw JSON through the SDK."""
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": "http://app.test/hook", "enabled_events": ["*"]}
    )
    session = checkout_url(client, catalog.monthly.id)
    pay(server, session, "4242424242424242")
    session = client.v1.checkout.sessions.retrieve(session.id)
    sub = client.v1.subscriptions.retrieve(session.subscription)
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    meter_event = client.v1.billing.meter_events.create(
        params={
            "event_name": "api_call",
            "payload": {"stripe_customer_id": sub.customer, "value": "1"},
        }
    )
    portal = client.v1.billing_portal.sessions.create(params={"customer": sub.customer})
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": sandbox.now()})
    found = [
        client.v1.customers.retrieve(sub.customer),
        catalog.monthly,
        client.v1.products.retrieve(catalog.monthly.product),
        session,
        sub,
        client.v1.subscription_items.retrieve(sub["items"].data[0].id),
        client.v1.invoices.retrieve(sub.latest_invoice),
        catalog.meter,
        meter_event,
        portal,
        endpoint,
        client.v1.events.list().data[0],
        clock,
        schedule,
    ]
    return {o["object"]: o.to_dict() for o in found}


EXPECTED = [
    "customer",
    "product",
    "price",
    "checkout.session",
    "subscription",
    "subscription_item",
    "invoice",
    "billing.meter",
    "billing.meter_event",
    "billing_portal.session",
    "webhook_endpoint",
    "event",
    "test_helpers.test_clock",
    "subscription_schedule",
]


@pytest.mark.parametrize("object_type", EXPECTED)
def test_object_has_every_field_of_stripes_sample(
    object_type: str, objects: dict[str, dict[str, Any]], samples: dict[str, Any]
) -> None:
    missing = set(samples[object_type]) - set(objects[object_type])
    assert not missing, f"{object_type} lacks {sorted(missing)}"


def test_invoice_lines_have_every_field_of_the_line_item_sample(
    objects: dict[str, dict[str, Any]], samples: dict[str, Any]
) -> None:
    line = objects["invoice"]["lines"]["data"][0]
    assert not set(samples["line_item"]) - set(line)
