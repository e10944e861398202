"""What a subscription update does to billing: new items, prorations, a reset billing period,
and the invoice due at once. Shared by `subscriptions.update` and `invoices.create_preview`
so a preview always shows what the update will charge."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..context import Ctx
from .items import billing_interval, planned_items
from .periods import cycle_line, is_metered, next_period_end, proration_lines


@dataclass
class Change:
    """A planned update: `invoice_lines` is None when nothing is invoiced at once."""

    items: list[dict[str, Any]]
    prorations: list[dict[str, Any]]
    invoice_lines: list[dict[str, Any]] | None
    period: tuple[int, int]
    anchor: int | None
    # Usage of metered items removed during the period, up to their removal: billed with the
    # next invoice (now under always_invoice), whatever the proration behavior.
    usage: list[dict[str, Any]] = field(default_factory=list)
    # Metered items added during the period count the meter from `at` on (item id: since).
    usage_since: dict[str, int] = field(default_factory=dict)


def period_end(sub: dict[str, Any]) -> int:
    """When the current billing period of the subscription ends."""
    return int(min(i["current_period_end"] for i in sub["items"]["data"]))


def plan_change(
    ctx: Ctx, sub: dict[str, Any], sent_items: list[dict[str, Any]], at: int, behavior: str
) -> Change:
    """Plan an `items[...]` update with a proration date `at` and a `proration_behavior`."""
    items, changes = planned_items(ctx, sub, sent_items)
    if sub["status"] == "trialing":
        # A trial goes on through a price change and nothing is prorated or charged: the new
        # price applies when the trial ends (docs: "Change the price of existing
        # subscriptions" > trials).
        return Change(items, [], None, _period(sub["items"]["data"][0]), None)
    if billing_interval(items) != billing_interval(sub["items"]["data"]):
        return _reset_period(ctx, sub, items, at, behavior)
    prorations = []
    if behavior != "none":
        prorations = [
            line
            for old, new in changes
            for line in proration_lines(ctx, old, new, at, _period(old or new))
        ]
    start, end = _period(sub["items"]["data"][0])
    # A metered price replaced or removed mid-period bills what its meter counted while it was
    # on the subscription; the price that replaces it counts from now on, so no usage is
    # billed twice or lost.
    usage = [
        cycle_line(ctx, old, _period(old), sub["customer"], (old["current_period_start"], at))
        for old, new in changes
        if old is not None
        and is_metered(old)
        and (new is None or new["price"]["id"] != old["price"]["id"])
    ]
    usage_since = {
        new["id"]: at
        for old, new in changes
        if new is not None
        and is_metered(new)
        and (old is None or new["price"]["id"] != old["price"]["id"])
    }
    # always_invoice bills the prorations at once, with any still pending from earlier.
    immediate = None
    if behavior == "always_invoice" and prorations:
        immediate = sub.get("_pending_lines", []) + prorations + usage
    first = min((line["period"]["start"] for line in prorations), default=start)
    return Change(items, prorations, immediate, (first, end), None, usage, usage_since)


def _reset_period(
    ctx: Ctx, sub: dict[str, Any], items: list[dict[str, Any]], at: int, behavior: str
) -> Change:
    # A price with another billing interval resets the billing cycle anchor to now and
    # invoices at once: unused time of the old items is credited (unless proration_behavior
    # is none) and the new period is charged in full (docs: "Change the price of existing
    # subscriptions" > billing periods; "Pending updates": the billing period changes).
    now = ctx.now(sub["test_clock"])
    end = next_period_end(now, items[0]["price"]["recurring"], now)
    old_items = sub["items"]["data"]
    credits = []
    if behavior != "none":
        credits = [
            line for old in old_items for line in proration_lines(ctx, old, None, at, _period(old))
        ]
    # Usage so far on the old metered items closes with the old period.
    usage = [
        cycle_line(ctx, old, _period(old), sub["customer"], (old["current_period_start"], now))
        for old in old_items
        if is_metered(old)
    ]
    for item in items:
        item.update(current_period_start=now, current_period_end=end)
    charges = [cycle_line(ctx, i, (now, end), sub["customer"]) for i in items if not is_metered(i)]
    lines = sub.get("_pending_lines", []) + credits + usage + charges
    return Change(items, credits, lines, (now, end), now)


def _period(item: dict[str, Any] | None) -> tuple[int, int]:
    assert item is not None
    return int(item["current_period_start"]), int(item["current_period_end"])


def apply_change(sub: dict[str, Any], change: Change, behavior: str) -> None:
    """Put the planned items on the subscription; prorations not invoiced now wait for the
    next invoice (create_prorations), pending ones are swept into an immediate invoice."""
    sub["items"]["data"] = change.items
    if change.anchor is not None:
        sub["billing_cycle_anchor"] = change.anchor
    if change.usage_since:
        sub["_usage_since"] = {**sub.get("_usage_since", {}), **change.usage_since}
    if change.invoice_lines is not None:
        sub.pop("_pending_lines", None)
        return
    waiting = change.prorations if behavior == "create_prorations" else []
    if waiting or change.usage:
        sub["_pending_lines"] = sub.get("_pending_lines", []) + waiting + change.usage
