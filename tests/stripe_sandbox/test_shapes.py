"""Every object the sandbox returns has every top-level field of Stripe's published sample, and
the nested objects the sample has, whatever parameters made it; so do its events' objects.

The object types come from the sandbox's own routes, so a type added to the sandbox without a
builder in `shape_builders.py` fails here.
"""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path
from typing import Any

import pytest
import stripe

from app.stripe_sandbox import Sandbox
from app.stripe_sandbox.api import ROUTES
from app.stripe_sandbox.context import EVENT_TYPES
from app.stripe_sandbox.shapes import SHAPES

from .conftest import Catalog, Server
from .shape_builders import BUILDERS, World
from .shape_check import beyond_sample, field_types, problems, sdk_class

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "stripe" / "fixtures3.json"
# Fields the SDK declares that the sample lacks, which the sandbox still sends (docs/sandbox.md
# lists them): a new endpoint's signing secret (in the create response only, as Stripe does), an
# `*.updated` event's previous attributes, an invoice line's price (Tollgate reads it), a
# session's line items (when expanded), the PaymentIntent an invoice payment names (the
# sample's stub shows only its type), and what a declined PaymentIntent says went wrong.
BEYOND_SAMPLE = {
    "webhook_endpoint.secret",
    "event.data.previous_attributes",
    "line_item.pricing.price_details",
    "invoice.lines[].pricing.price_details",
    "checkout.session.line_items",
    "invoice_payment.payment.payment_intent",
    "payment_intent.last_payment_error.charge",
    "payment_intent.last_payment_error.code",
    "payment_intent.last_payment_error.decline_code",
    "payment_intent.last_payment_error.message",
}
SDK_EVENT_TYPES = frozenset(typing.get_args(stripe.Event.__annotations__["type"]))


def served_types() -> list[str]:
    """The object type of every route, by the SDK's URL for each object type."""
    by_url = {
        "/v1/" + name.replace(".", "/") + "s": name
        for name in stripe._object_classes.OBJECT_CLASSES
    }
    # Listed under another type's path, which the SDK's naming above does not give.
    by_url["/v1/billing/meters/{}/event_summaries"] = "billing.meter_event_summary"
    found = set()
    for route in ROUTES:
        prefixes = [u for u in by_url if re.match(re.escape(u) + "(/|$)", route.pattern)]
        assert prefixes, f"no Stripe object type is served at {route.pattern}"
        found.add(by_url[max(prefixes, key=len)])
    return sorted(found)


@pytest.fixture(scope="module")
def samples() -> dict[str, Any]:
    if not FIXTURES.exists():
        pytest.skip(f"Stripe's sample objects are not at {FIXTURES} (outside the repo)")
    return dict(json.loads(FIXTURES.read_text())["resources"])


@pytest.fixture
def world(client: stripe.StripeClient, server: Server, catalog: Catalog, sandbox: Sandbox) -> World:
    return World(client, server, catalog, sandbox)


def shape_problems(obj: dict[str, Any], samples: dict[str, Any]) -> list[str]:
    """Missing fields, forbidden nulls and undeclared fields, plus fields beyond the sample
    that docs/sandbox.md does not list."""
    object_type = obj["object"]
    sample, cls = samples[object_type], sdk_class(object_type)
    found = problems(sample, obj, cls, object_type)
    extra = beyond_sample(sample, obj, cls, object_type) - BEYOND_SAMPLE
    found += [f"{path}: beyond the sample and not documented" for path in sorted(extra)]
    if object_type == "event":
        found += [f"{obj['type']}: {p}" for p in shape_problems(obj["data"]["object"], samples)]
    return found


def test_every_served_object_type_has_a_builder() -> None:
    assert set(served_types()) - set(BUILDERS) == set()


@pytest.mark.parametrize("full", [False, True], ids=["minimal", "full"])
@pytest.mark.parametrize("object_type", served_types())
def test_object_has_every_field_of_stripes_sample(
    object_type: str, full: bool, world: World, samples: dict[str, Any]
) -> None:
    built = BUILDERS[object_type](world, full)
    assert object_type in {o["object"] for o in built}
    found = [p for obj in built for p in shape_problems(obj, samples)]
    assert found == []


@pytest.mark.parametrize("object_type", sorted(SHAPES))
def test_shape_table_has_every_field_of_the_sample_and_only_sdk_fields(
    object_type: str, samples: dict[str, Any]
) -> None:
    table, sample = SHAPES[object_type], samples[object_type]
    assert set(sample) - set(table) == set()
    assert set(table) - set(field_types(sdk_class(object_type))) - set(sample) == set()
    assert {f"{object_type}.{f}" for f in set(table) - set(sample)} <= BEYOND_SAMPLE


def test_sandbox_emits_only_event_types_the_sdk_knows() -> None:
    assert not EVENT_TYPES - SDK_EVENT_TYPES


def test_events_carry_whole_objects_and_what_changed(world: World, samples: dict[str, Any]) -> None:
    world.client.v1.webhook_endpoints.create(
        params={"url": "http://app.test/hook", "enabled_events": ["*"]}
    )
    for build in BUILDERS.values():
        build(world, True)
    events = [
        e.to_dict() for e in world.client.v1.events.list(params={"limit": 100}).auto_paging_iter()
    ]
    assert {e["type"] for e in events} <= EVENT_TYPES
    for event in events:
        assert shape_problems(event, samples) == []
        obj, previous = event["data"]["object"], event["data"].get("previous_attributes")
        if not event["type"].endswith(".updated"):
            assert previous is None, event["type"]
            continue
        assert previous, event["type"]
        changed = {k for k, old in previous.items() if obj.get(k) != old}
        assert changed == set(previous), event["type"]


UPDATES: dict[str, tuple[str, dict[str, Any]]] = {
    "customer": ("customers", {"name": "Ada", "metadata": {"a": "1"}}),
    "product": ("products", {"description": "New", "active": False}),
    "price": ("prices", {"nickname": "Monthly", "lookup_key": "monthly"}),
    "subscription": ("subscriptions", {"cancel_at_period_end": True}),
}


@pytest.mark.parametrize("object_type", sorted(UPDATES))
def test_updated_event_holds_the_old_value_of_exactly_the_changed_fields(
    object_type: str, world: World
) -> None:
    service_name, params = UPDATES[object_type]
    service = getattr(world.client.v1, service_name)
    made = next(o for o in BUILDERS[object_type](world, False) if o["object"] == object_type)
    before = service.retrieve(made["id"]).to_dict()
    after = service.update(made["id"], params=params).to_dict()
    [event] = world.client.v1.events.list(
        params={"type": f"{_event_prefix(object_type)}.updated", "limit": 1}
    ).data
    expected = {k: old for k, old in before.items() if after[k] != old}
    assert expected
    assert event.to_dict()["data"]["previous_attributes"] == expected


def _event_prefix(object_type: str) -> str:
    return "customer.subscription" if object_type == "subscription" else object_type
