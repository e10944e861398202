"""Subscription schedules: phases that change a subscription's prices at a phase boundary."""

from __future__ import annotations

from typing import Any

import stripe.params as sp

from ..context import Ctx, snapshot
from ..errors import StripeError
from ..listing import Stored, hide_test_clocks, matching, paginate
from ..router import Route
from ..shapes import skeleton
from ..store import new_id
from .changes import period_end
from .common import assign, change, refuse_unsupported, retrieve
from .items import build_item
from .lifecycle import cancel_subscription
from .periods import cycle_line, period_boundary


def create(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/subscription_schedules from_subscription (the only form the sandbox models)."""
    refuse_unsupported(params, ("from_subscription", "metadata"))
    if "from_subscription" not in params:
        raise StripeError(
            "The Stripe sandbox creates schedules from_subscription only.",
            code="parameter_missing",
            param="from_subscription",
        )
    sub = ctx.fetch("subscription", params["from_subscription"], "from_subscription")
    if sub["schedule"]:
        raise StripeError(
            f"The subscription {sub['id']} is already attached to a schedule.",
            param="from_subscription",
        )
    first = sub["items"]["data"][0]
    schedule = skeleton(
        "subscription_schedule", new_id("sub_sched", 24), ctx.now(sub["test_clock"])
    )
    schedule.update(
        customer=sub["customer"],
        end_behavior="release",
        status="active",
        subscription=sub["id"],
        test_clock=sub["test_clock"],
        billing_mode=sub["billing_mode"],
        default_settings={
            "billing_cycle_anchor": "automatic",
            "collection_method": "charge_automatically",
        },
        phases=[
            _phase(
                sub["items"]["data"],
                first["current_period_start"],
                first["current_period_end"],
                "create_prorations",
            )
        ],
    )
    assign(schedule, params, ("metadata",))
    _set_current_phase(schedule, ctx.now(sub["test_clock"]))
    ctx.save(schedule)
    ctx.emit("subscription_schedule.created", schedule)
    change(ctx, sub, "customer.subscription.updated", schedule=schedule["id"])
    return schedule


def _phase(items: list[dict[str, Any]], start: int, end: int, proration: str) -> dict[str, Any]:
    return {
        "add_invoice_items": [],
        "application_fee_percent": None,
        "billing_cycle_anchor": None,
        "collection_method": None,
        "currency": items[0]["price"]["currency"],
        "default_payment_method": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "end_date": end,
        "invoice_settings": None,
        "metadata": {},
        "on_behalf_of": None,
        "proration_behavior": proration,
        "start_date": start,
        "transfer_data": None,
        "trial_end": None,
        "billing_thresholds": None,
        "items": [
            {
                "price": i["price"]["id"],
                "quantity": i["quantity"],
                "discounts": [],
                "metadata": {},
                "tax_rates": [],
                "plan": i["price"]["id"],
                "billing_thresholds": None,
            }
            for i in items
        ],
    }


def _set_current_phase(schedule: dict[str, Any], now: int) -> None:
    current = next((p for p in schedule["phases"] if p["start_date"] <= now < p["end_date"]), None)
    schedule["current_phase"] = current and {
        "start_date": current["start_date"],
        "end_date": current["end_date"],
    }


def update(ctx: Ctx, params: dict[str, Any], schedule_id: str) -> dict[str, Any]:
    """POST /v1/subscription_schedules/{id}: replace the phases."""
    refuse_unsupported(params, ("phases", "end_behavior", "metadata", "proration_behavior"))
    schedule = _active(ctx, schedule_id)
    sub = ctx.fetch("subscription", schedule["subscription"])
    updated = snapshot(schedule)
    if "phases" in params:
        updated["phases"] = _phases(ctx, sub, params["phases"])
    assign(updated, params, ("end_behavior", "metadata"))
    _set_current_phase(updated, ctx.now(sub["test_clock"]))
    return change(ctx, schedule, "subscription_schedule.updated", **updated)


def _phases(ctx: Ctx, sub: dict[str, Any], sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    phases = []
    start = sub["items"]["data"][0]["current_period_start"]
    for n, spec in enumerate(sent):
        refuse_unsupported(
            spec, ("items", "start_date", "end_date", "duration", "proration_behavior", "metadata")
        )
        start = _timestamp(ctx, sub, spec.get("start_date", start))
        prices = [
            ctx.fetch("price", i["price"], f"phases[{n}][items][{k}][price]")
            for k, i in enumerate(spec.get("items", []))
        ]
        if not prices:
            raise StripeError(
                "Each phase needs items.", code="parameter_missing", param=f"phases[{n}][items]"
            )
        duration = spec.get("duration") or {
            "interval": prices[0]["recurring"]["interval"],
            "interval_count": prices[0]["recurring"]["interval_count"],
        }
        end = spec.get("end_date") or period_boundary(
            start, duration["interval"], duration.get("interval_count", 1), 1
        )
        # Metered prices take no quantity: usage decides what they bill.
        items = [
            {"price": p, "quantity": None if _metered(p) else i.get("quantity", 1)}
            for p, i in zip(prices, spec["items"], strict=True)
        ]
        phase = _phase(
            items,
            start,
            _timestamp(ctx, sub, end),
            spec.get("proration_behavior", "create_prorations"),
        )
        phases.append(phase)
        start = phase["end_date"]
    return phases


def _timestamp(ctx: Ctx, sub: dict[str, Any], value: int | str) -> int:
    return ctx.now(sub["test_clock"]) if value == "now" else int(value)


def apply_schedule(ctx: Ctx, sub: dict[str, Any]) -> None:
    """At a period end: start the phase beginning now, or end the schedule after its last."""
    schedule = ctx.fetch("subscription_schedule", sub["schedule"])
    at = period_end(sub)
    upcoming = next((p for p in schedule["phases"] if p["start_date"] == at), None)
    if upcoming is not None:
        sub = ctx.fetch("subscription", sub["id"])
        before = snapshot(sub)
        items = _phase_items(ctx, sub, upcoming)
        _bill_outgoing_usage(ctx, sub, items, at)
        sub["items"]["data"] = items
        ctx.save(sub)
        ctx.emit("customer.subscription.updated", sub, before)
        _set_current_phase(schedule, at)
        change(
            ctx, schedule, "subscription_schedule.updated", current_phase=schedule["current_phase"]
        )
    elif at >= schedule["phases"][-1]["end_date"]:
        if schedule["end_behavior"] == "cancel":
            change(ctx, sub, "customer.subscription.updated", cancel_at_period_end=True)
        _release(ctx, schedule, "subscription_schedule.completed")


def _bill_outgoing_usage(
    ctx: Ctx, sub: dict[str, Any], items: list[dict[str, Any]], at: int
) -> None:
    # The renewal that follows a phase change bills the period that just ended: the usage of
    # metered prices the new phase drops is billed on it too, and metered prices the phase
    # brings count from the phase's start, so the ended period's usage is billed once.
    old_ids, new_ids = {i["id"] for i in sub["items"]["data"]}, {i["id"] for i in items}
    outgoing = [
        cycle_line(
            ctx,
            old,
            (old["current_period_start"], old["current_period_end"]),
            sub["customer"],
            (old["current_period_start"], at),
        )
        for old in sub["items"]["data"]
        if old["id"] not in new_ids and _metered(old["price"])
    ]
    if outgoing:
        sub["_pending_lines"] = sub.get("_pending_lines", []) + outgoing
    incoming = {i["id"]: at for i in items if i["id"] not in old_ids and _metered(i["price"])}
    if incoming:
        sub["_usage_since"] = {**sub.get("_usage_since", {}), **incoming}


def _metered(price: dict[str, Any]) -> bool:
    return bool(price["recurring"]["usage_type"] == "metered")


def _phase_items(ctx: Ctx, sub: dict[str, Any], phase: dict[str, Any]) -> list[dict[str, Any]]:
    # An item whose price stays keeps its id; other prices get new items. Their period is
    # still the one ending now: the renewal that follows moves it.
    current = {i["price"]["id"]: i for i in sub["items"]["data"]}
    items = []
    for n, spec in enumerate(phase["items"]):
        item = build_item(ctx, sub, spec["price"], spec["quantity"], f"phases[{n}][items]")
        kept = current.get(spec["price"])
        source = kept or sub["items"]["data"][0]
        item.update(
            current_period_start=source["current_period_start"],
            current_period_end=source["current_period_end"],
        )
        if kept:
            item.update(id=kept["id"], created=kept["created"], metadata=kept["metadata"])
        items.append(item)
    return items


def _release(ctx: Ctx, schedule: dict[str, Any], event_type: str) -> dict[str, Any]:
    sub = ctx.fetch("subscription", schedule["subscription"])
    now = ctx.now(sub["test_clock"])
    change(ctx, sub, "customer.subscription.updated", schedule=None)
    released = event_type == "subscription_schedule.released"
    return change(
        ctx,
        schedule,
        event_type,
        current_phase=None,
        status="released" if released else "completed",
        released_at=now if released else None,
        completed_at=None if released else now,
        released_subscription=sub["id"] if released else None,
    )


def _active(ctx: Ctx, schedule_id: str) -> dict[str, Any]:
    schedule = ctx.fetch("subscription_schedule", schedule_id)
    if schedule["status"] not in ("active", "not_started"):
        raise StripeError(
            f"You cannot update a subscription schedule that is currently in "
            f"the `{schedule['status']}` status."
        )
    return schedule


def release(ctx: Ctx, params: dict[str, Any], schedule_id: str) -> dict[str, Any]:
    """POST /v1/subscription_schedules/{id}/release: keep the subscription, drop the plan."""
    refuse_unsupported(params, ())
    return _release(ctx, _active(ctx, schedule_id), "subscription_schedule.released")


def cancel(ctx: Ctx, params: dict[str, Any], schedule_id: str) -> dict[str, Any]:
    """POST /v1/subscription_schedules/{id}/cancel: also cancels the subscription now."""
    refuse_unsupported(params, ())
    schedule = _active(ctx, schedule_id)
    cancel_subscription(
        ctx, ctx.fetch("subscription", schedule["subscription"]), "cancellation_requested"
    )
    return ctx.fetch("subscription_schedule", schedule_id)


def list_schedules(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    """GET /v1/subscription_schedules, filtered by customer, `scheduled` and their timestamps."""
    by_fields = matching(
        params, "customer", "customer_account", "canceled_at", "completed_at", "released_at"
    )
    on_view = hide_test_clocks(params, "customer")
    # scheduled=true: only the schedules that have not started yet (API reference).
    scheduled = params.get("scheduled")

    def keep(schedule: dict[str, Any]) -> bool:
        not_started = schedule["status"] == "not_started"
        return scheduled in (None, not_started) and by_fields(schedule) and on_view(schedule)

    return paginate(
        Stored(ctx.store, "subscription_schedule"), params, "/v1/subscription_schedules", keep
    )


ROUTES = [
    Route("POST", "/v1/subscription_schedules", sp.SubscriptionScheduleCreateParams, create),
    Route("GET", "/v1/subscription_schedules", sp.SubscriptionScheduleListParams, list_schedules),
    Route(
        "GET",
        "/v1/subscription_schedules/{}",
        sp.SubscriptionScheduleRetrieveParams,
        retrieve("subscription_schedule"),
    ),
    Route("POST", "/v1/subscription_schedules/{}", sp.SubscriptionScheduleUpdateParams, update),
    Route(
        "POST",
        "/v1/subscription_schedules/{}/release",
        sp.SubscriptionScheduleReleaseParams,
        release,
    ),
    Route(
        "POST", "/v1/subscription_schedules/{}/cancel", sp.SubscriptionScheduleCancelParams, cancel
    ),
]
