"""Moving a clock: every step that falls due is processed in time order.

Objects on a test clock move only with that clock; the rest follow the global sandbox clock.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Iterator
from typing import Any

from .context import DAY, Ctx, snapshot
from .resources.changes import period_end
from .resources.common import change
from .resources.disputes import next_step
from .resources.lifecycle import (
    attempt_payment,
    cancel_subscription,
    create_invoice,
    expire_pending_update,
    finalize_and_pay,
    schedule_finalization,
)
from .resources.periods import cycle_line, next_period_end
from .resources.schedules import apply_schedule

Action = Callable[[Ctx, dict[str, Any]], Any]
# When a step is due, its rank among steps due at the same second (invoices settle before the
# subscription they belong to moves on), and what it does.
Step = tuple[int, int, Action]
# Stripe sends customer.subscription.trial_will_end three days before a trial ends.
TRIAL_WILL_END_NOTICE = 3 * DAY
_LIVE_STATUSES = ("trialing", "active", "past_due", "unpaid")


# The objects whose state holds steps: what the store counts writes of (Store.watch).
STEP_TYPES = ("invoice", "subscription", "dispute")
# The states in which an object of each type may have a step (the others are never read), in
# the order that steps due at the same second and of the same rank are taken.
_STATES_WITH_STEPS = {
    "invoice": ("draft", "open"),
    "dispute": ("needs_response", "under_review"),
    "subscription": _LIVE_STATUSES,
}


def advance(ctx: Ctx, clock_id: str | None, target: int) -> None:
    """Process, in time order, everything on this clock that falls due up to `target`.

    Finding the steps reads every invoice, subscription and dispute that can have one, which
    takes seconds in a filled sandbox. So the time of the next step is kept, with the count of
    their writes when it was found: while none was written since and that time is still ahead,
    a tick is one read, not a scan.
    """
    memo_key = f"next_step:{clock_id or 'global'}"
    next_at, seen_writes = json.loads(ctx.store.meta(memo_key, "[null, -1]"))
    if seen_writes == ctx.store.writes() and (next_at is None or next_at > target):
        return  # nothing written since the last scan, and nothing due until next_at (or ever)
    steps = _Steps(ctx, clock_id)
    try:
        while (due := steps.first()) is not None and due[0] <= target:
            when, action, object_id = due
            ctx.pinned[clock_id] = when
            with ctx.store.noting_writes() as written:
                action(ctx, ctx.store.get(object_id) or {})
            steps.reread(written)
    finally:
        ctx.pinned.pop(clock_id, None)
    upcoming = due[0] if due is not None else None
    if [upcoming, ctx.store.writes()] != [next_at, seen_writes]:
        ctx.store.set_meta(memo_key, json.dumps([upcoming, ctx.store.writes()]))


class _Steps:
    """Every step on a clock, in the order they are taken. The objects are read once; after a
    step, only those it wrote are read again (reading them all after every step made a month
    of a few hundred subscriptions take minutes)."""

    def __init__(self, ctx: Ctx, clock_id: str | None) -> None:
        self._ctx, self._clock_id = ctx, clock_id
        # (when, rank, type's order, newest first, order among the object's own), object id,
        # the object's version when the entry was made, action: stale versions are skipped.
        self._heap: list[tuple[tuple[int, int, int, int, int], str, int, Action]] = []
        self._versions: dict[str, int] = {}
        for order, (object_type, states) in enumerate(_STATES_WITH_STEPS.items()):
            for position, obj in ctx.store.all_in_state(object_type, "status", states):
                self._add(obj, order, position)

    def first(self) -> tuple[int, Action, str] | None:
        """The next step: (when, action, object id), or None when there is none."""
        while self._heap:
            key, object_id, version, action = self._heap[0]
            if self._versions.get(object_id) == version:
                return key[0], action, object_id
            heapq.heappop(self._heap)
        return None

    def reread(self, object_ids: set[str]) -> None:
        """Replace the steps of these objects with what they hold now."""
        types = list(_STATES_WITH_STEPS)
        for object_id in object_ids:
            self._versions[object_id] = self._versions.get(object_id, 0) + 1
            obj = self._ctx.store.get(object_id)
            if obj is None or obj.get("object") not in _STATES_WITH_STEPS:
                continue
            position = self._ctx.store.position(object_id, obj["object"])
            self._add(obj, types.index(obj["object"]), position or 0)

    def _add(self, obj: dict[str, Any], order: int, position: int) -> None:
        version = self._versions.setdefault(obj["id"], 0)
        for index, (when, rank, action) in enumerate(_steps_of(obj, self._clock_id)):
            entry = ((when, rank, order, -position, index), obj["id"], version, action)
            heapq.heappush(self._heap, entry)


def _steps_of(obj: dict[str, Any], clock_id: str | None) -> Iterator[Step]:
    if obj["object"] == "invoice":
        if obj["test_clock"] != clock_id:
            return
        if obj["status"] == "draft" and obj["automatically_finalizes_at"]:
            yield obj["automatically_finalizes_at"], 0, finalize_and_pay
        if obj["status"] == "open" and obj["next_payment_attempt"]:
            yield obj["next_payment_attempt"], 1, attempt_payment
    elif obj["object"] == "dispute":
        step = next_step(obj)
        if step is not None and obj.get("_test_clock") == clock_id:
            yield step[0], 1, step[1]
    elif obj["test_clock"] == clock_id and obj["status"] in _LIVE_STATUSES:
        if obj["status"] == "trialing" and not obj.get("_trial_will_end_sent"):
            yield obj["trial_end"] - TRIAL_WILL_END_NOTICE, 2, _trial_will_end
        if obj["pending_update"]:
            yield obj["pending_update"]["expires_at"], 2, expire_pending_update
        yield period_end(obj), 3, _end_period


def _trial_will_end(ctx: Ctx, sub: dict[str, Any]) -> None:
    sub["_trial_will_end_sent"] = True
    ctx.save(sub)
    ctx.emit("customer.subscription.trial_will_end", sub)


def _end_period(ctx: Ctx, sub: dict[str, Any]) -> None:
    if sub["cancel_at_period_end"] or (sub["cancel_at"] and sub["cancel_at"] <= period_end(sub)):
        cancel_subscription(ctx, sub, "cancellation_requested")
        return
    if sub["schedule"]:
        apply_schedule(ctx, sub)
        sub = ctx.fetch("subscription", sub["id"])
        if sub["status"] == "canceled":
            return
    if sub["status"] == "trialing" and not _payment_method(ctx, sub):
        # trial_settings.end_behavior.missing_payment_method decides (docs: "Use trial
        # periods" > "Create free trials without payment").
        behaviour = sub["trial_settings"]["end_behavior"]["missing_payment_method"]
        if behaviour == "cancel":
            cancel_subscription(ctx, sub, "cancellation_requested")
            return
        if behaviour == "pause":
            change(ctx, sub, "customer.subscription.updated", status="paused")
            return
    _renew(ctx, sub)


def _payment_method(ctx: Ctx, sub: dict[str, Any]) -> str | None:
    customer = ctx.fetch("customer", sub["customer"])
    method = sub["default_payment_method"] or customer["invoice_settings"]["default_payment_method"]
    return str(method) if method else None


def _renew(ctx: Ctx, sub: dict[str, Any]) -> None:
    before = snapshot(sub)
    lines, period = next_period(ctx, sub)
    ctx.save(sub)
    ctx.emit("customer.subscription.updated", sub, before)
    invoice = create_invoice(ctx, sub, "subscription_cycle", lines, period)
    schedule_finalization(ctx, invoice)


def next_period(ctx: Ctx, sub: dict[str, Any]) -> tuple[list[dict[str, Any]], tuple[int, int]]:
    """Move a subscription into its next period (ending a trial); returns the renewal
    invoice's lines and its period, the one that just ended (usage is billed in arrears)."""
    start, end = sub["items"]["data"][0]["current_period_start"], period_end(sub)
    new_end = next_period_end(
        sub["billing_cycle_anchor"], sub["items"]["data"][0]["price"]["recurring"], end
    )
    for item in sub["items"]["data"]:
        item.update(current_period_start=end, current_period_end=new_end)
    if sub["status"] == "trialing":
        sub["status"] = "active"
    lines = sub.pop("_pending_lines", []) + [
        cycle_line(ctx, item, (end, new_end), sub["customer"], (start, end))
        for item in sub["items"]["data"]
    ]
    return lines, (start, end)
