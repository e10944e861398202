"""Webhook endpoints, the events API, and test clocks."""

from __future__ import annotations

import fnmatch
import secrets
from typing import Any

import stripe.params as sp
import stripe.params.test_helpers as tsp

from ..clock import advance
from ..context import DAY, Ctx
from ..errors import StripeError
from ..listing import Stored, matching, paginate
from ..router import Route
from ..shapes import skeleton
from ..store import new_id
from .common import assign, deleted, lister, refuse_unsupported, retrieve


def create_endpoint(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/webhook_endpoints: the signing secret is shown only in this response."""
    endpoint = skeleton("webhook_endpoint", new_id("we", 24), ctx.now())
    endpoint.update(status="enabled", url=params["url"], enabled_events=params["enabled_events"])
    assign(endpoint, params, ("api_version", "description", "metadata"))
    endpoint["_secret"] = "whsec_" + secrets.token_hex(16)
    ctx.save(endpoint)
    return endpoint | {"secret": endpoint["_secret"]}


def update_endpoint(ctx: Ctx, params: dict[str, Any], endpoint_id: str) -> dict[str, Any]:
    """POST /v1/webhook_endpoints/{id} (Stripe sends no event about webhook endpoints)."""
    endpoint = ctx.fetch("webhook_endpoint", endpoint_id)
    if "disabled" in params:
        params = {**params, "status": "disabled" if params["disabled"] else "enabled"}
    assign(endpoint, params, ("url", "enabled_events", "description", "metadata", "status"))
    return ctx.save(endpoint)


def delete_endpoint(ctx: Ctx, params: dict[str, Any], endpoint_id: str) -> dict[str, Any]:
    """DELETE /v1/webhook_endpoints/{id}."""
    endpoint = ctx.fetch("webhook_endpoint", endpoint_id)
    ctx.store.delete(endpoint_id)
    return deleted(endpoint)


def list_events(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    """GET /v1/events, filtered by `type` (`*` a wildcard, as in `customer.*`), `types[]` and
    `created`."""
    refuse_unsupported(
        params, ("created", "ending_before", "limit", "starting_after", "type", "types")
    )
    if "type" in params and "types" in params:
        raise StripeError("You may pass either `type` or `types`, but not both.", param="types")
    by_created = matching(params)
    pattern = params.get("type", "*")
    types = params.get("types")

    def keep(event: dict[str, Any]) -> bool:
        return (
            by_created(event)
            and fnmatch.fnmatchcase(event["type"], pattern)
            and (types is None or event["type"] in types)
        )

    return paginate(Stored(ctx.store, "event"), params, "/v1/events", keep)


def create_test_clock(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/test_helpers/test_clocks."""
    clock = skeleton("test_helpers.test_clock", new_id("clock", 24), ctx.now())
    # Stripe deletes test clocks (and their objects) 30 days after creation.
    clock.update(
        frozen_time=params["frozen_time"],
        name=params.get("name"),
        status="ready",
        status_details={},
        deletes_after=clock["created"] + 30 * DAY,
    )
    return ctx.save(clock)


def advance_test_clock(ctx: Ctx, params: dict[str, Any], clock_id: str) -> dict[str, Any]:
    """POST /v1/test_helpers/test_clocks/{id}/advance (done synchronously, then `ready`)."""
    clock = ctx.fetch("test_helpers.test_clock", clock_id)
    if params["frozen_time"] < clock["frozen_time"]:
        raise StripeError("The test clock can only move forward.", param="frozen_time")
    advance(ctx, clock_id, params["frozen_time"])
    clock = ctx.fetch("test_helpers.test_clock", clock_id)
    clock["frozen_time"] = params["frozen_time"]
    ctx.save(clock)
    ctx.emit("test_helpers.test_clock.ready", clock)
    return clock


def delete_test_clock(ctx: Ctx, params: dict[str, Any], clock_id: str) -> dict[str, Any]:
    """DELETE /v1/test_helpers/test_clocks/{id}: its customers and their objects go too."""
    clock = ctx.fetch("test_helpers.test_clock", clock_id)
    for object_type in ("customer", "subscription", "invoice", "subscription_schedule"):
        for obj in ctx.store.all(object_type):
            if obj.get("test_clock") == clock_id:
                ctx.store.delete(obj["id"])
    ctx.store.delete(clock_id)
    return deleted(clock)


ROUTES = [
    Route("POST", "/v1/webhook_endpoints", sp.WebhookEndpointCreateParams, create_endpoint),
    Route(
        "GET",
        "/v1/webhook_endpoints",
        sp.WebhookEndpointListParams,
        lister("webhook_endpoint", "/v1/webhook_endpoints"),
    ),
    Route(
        "GET",
        "/v1/webhook_endpoints/{}",
        sp.WebhookEndpointRetrieveParams,
        retrieve("webhook_endpoint"),
    ),
    Route("POST", "/v1/webhook_endpoints/{}", sp.WebhookEndpointUpdateParams, update_endpoint),
    Route("DELETE", "/v1/webhook_endpoints/{}", sp.WebhookEndpointDeleteParams, delete_endpoint),
    Route("GET", "/v1/events", sp.EventListParams, list_events),
    Route("GET", "/v1/events/{}", sp.EventRetrieveParams, retrieve("event")),
    Route("POST", "/v1/test_helpers/test_clocks", tsp.TestClockCreateParams, create_test_clock),
    Route(
        "GET",
        "/v1/test_helpers/test_clocks",
        tsp.TestClockListParams,
        lister("test_helpers.test_clock", "/v1/test_helpers/test_clocks"),
    ),
    Route(
        "GET",
        "/v1/test_helpers/test_clocks/{}",
        tsp.TestClockRetrieveParams,
        retrieve("test_helpers.test_clock"),
    ),
    Route(
        "POST",
        "/v1/test_helpers/test_clocks/{}/advance",
        tsp.TestClockAdvanceParams,
        advance_test_clock,
    ),
    Route(
        "DELETE", "/v1/test_helpers/test_clocks/{}", tsp.TestClockDeleteParams, delete_test_clock
    ),
]
