"""Billing meters and meter events (the customer portal is portal.py)."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

import stripe.params.billing as bsp

from ..context import DAY, Ctx
from ..errors import StripeError
from ..listing import paginate
from ..router import Route
from ..shapes import skeleton
from ..store import new_id
from .common import lister, refuse_unsupported, retrieve
from .periods import counted_usage

# Meter events may be at most 35 days old (docs: "Record usage with the API").
_MAX_EVENT_AGE = 35 * DAY
# A summary's value_grouping_window: its length, to which start_time and end_time must align
# (minutes without a window; hours; UTC days). API reference: list billing meter event summaries.
_WINDOWS: dict[str | None, tuple[int, str]] = {
    None: (60, "minute"),
    "hour": (3600, "hour"),
    "day": (DAY, "day (00:00 UTC)"),
}


def create_meter(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/billing/meters."""
    refuse_unsupported(
        params,
        ("display_name", "event_name", "default_aggregation", "customer_mapping", "value_settings"),
    )
    meter = skeleton("billing.meter", new_id("mtr_test", 24), ctx.now())
    meter.update(
        display_name=params["display_name"],
        event_name=params["event_name"],
        default_aggregation=params["default_aggregation"],
        status="active",
        customer_mapping=params.get(
            "customer_mapping", {"event_payload_key": "stripe_customer_id", "type": "by_id"}
        ),
        value_settings=params.get("value_settings", {"event_payload_key": "value"}),
        status_transitions={"deactivated_at": None},
        updated=meter["created"],
    )
    if meter["default_aggregation"]["formula"] != "sum":
        raise StripeError(
            "The Stripe sandbox aggregates meters with formula=sum only.",
            param="default_aggregation[formula]",
        )
    return ctx.save(meter)


def create_meter_event(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/billing/meter_events."""
    meter = next(
        (
            m
            for m in ctx.store.all("billing.meter")
            if m["event_name"] == params["event_name"] and m["status"] == "active"
        ),
        None,
    )
    if meter is None:
        raise StripeError(
            f"No active meter found for event_name '{params['event_name']}'.", param="event_name"
        )
    customer_id = params["payload"].get(meter["customer_mapping"]["event_payload_key"])
    if customer_id is None:
        raise StripeError("The payload is missing the meter's customer key.", param="payload")
    customer = ctx.fetch("customer", customer_id, "payload")
    now = ctx.now(customer["test_clock"])
    timestamp = params.get("timestamp", now)
    if not now - _MAX_EVENT_AGE <= timestamp <= now + 300:
        raise StripeError(
            "Timestamp must be within the past 35 calendar days or up to 5 minutes in the future.",
            param="timestamp",
        )
    identifier = params.get("identifier") or new_id("mev", 20)
    # Stripe enforces identifier uniqueness for at least 24 h but validates meter events
    # asynchronously: a repeat is accepted and then not counted, so report it, don't fail it.
    duplicate = not ctx.store.first_use("meter_event_identifier", identifier)
    event = {
        "id": new_id("mev", 24),
        "object": "billing.meter_event",
        "created": now,
        "event_name": params["event_name"],
        "identifier": identifier,
        "livemode": False,
        "payload": params["payload"],
        "timestamp": timestamp,
        "_duplicate": duplicate,
    }
    ctx.save(event)
    # Stripe's meter events have no id; the sandbox keeps one only to store them.
    return {k: v for k, v in event.items() if k != "id"}


def list_event_summaries(ctx: Ctx, params: dict[str, Any], meter_id: str) -> dict[str, Any]:
    """GET /v1/billing/meters/{id}/event_summaries: a customer's counted usage in
    [start_time, end_time), as one summary or one per hour or day with usage, newest first."""
    meter = ctx.fetch("billing.meter", meter_id)
    customer = ctx.fetch("customer", params["customer"], "customer")
    start, end, window = _summary_range(params)
    totals = {start: Decimal(0)} if window is None else {}
    for timestamp, value in counted_usage(ctx, meter, customer["id"], start, end):
        at = start if window is None else timestamp - (timestamp - start) % window
        totals[at] = totals.get(at, Decimal(0)) + value
    summaries = [
        _summary(meter["id"], customer["id"], at, end if window is None else at + window, total)
        for at, total in sorted(totals.items(), reverse=True)
    ]
    return paginate(summaries, params, f"/v1/billing/meters/{meter_id}/event_summaries")


def _summary_range(params: dict[str, Any]) -> tuple[int, int, int | None]:
    grouping = params.get("value_grouping_window")
    if grouping not in _WINDOWS:
        raise StripeError(
            "Invalid value_grouping_window: must be one of day, hour",
            param="value_grouping_window",
        )
    length, unit = _WINDOWS[grouping]
    for name in ("start_time", "end_time"):
        if params[name] % length:
            raise StripeError(f"{name} must be aligned with {unit} boundaries.", param=name)
    if params["end_time"] <= params["start_time"]:
        raise StripeError("end_time must be after start_time.", param="end_time")
    return params["start_time"], params["end_time"], None if grouping is None else length


def _summary(meter: str, customer: str, start: int, end: int, total: Decimal) -> dict[str, Any]:
    # The same window has the same id on every call, so a cursor names it.
    digest = hashlib.sha256(f"{meter}:{customer}:{start}:{end}".encode()).hexdigest()
    return {
        "id": "mtrusg_test_" + digest[:40],
        "object": "billing.meter_event_summary",
        # A float in Stripe's reference; a whole sum is a whole number there, as here.
        "aggregated_value": int(total) if total == total.to_integral_value() else float(total),
        "end_time": end,
        "livemode": False,
        "meter": meter,
        "start_time": start,
    }


ROUTES = [
    Route("POST", "/v1/billing/meters", bsp.MeterCreateParams, create_meter),
    Route(
        "GET",
        "/v1/billing/meters",
        bsp.MeterListParams,
        lister("billing.meter", "/v1/billing/meters", "status"),
    ),
    Route("GET", "/v1/billing/meters/{}", bsp.MeterRetrieveParams, retrieve("billing.meter")),
    Route(
        "GET",
        "/v1/billing/meters/{}/event_summaries",
        bsp.MeterEventSummaryListParams,
        list_event_summaries,
    ),
    Route("POST", "/v1/billing/meter_events", bsp.MeterEventCreateParams, create_meter_event),
]
