"""Moving a clock: every step that falls due is processed in time order.

Objects on a test clock move only with that clock; the rest follow the global sandbox clock.
"""

from __future__ import annotations

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

Step = tuple[int, int, Callable[[Ctx, dict[str, Any]], Any], str]
# Stripe sends customer.subscription.trial_will_end three days before a trial ends.
TRIAL_WILL_END_NOTICE = 3 * DAY
_LIVE_STATUSES = ("trialing", "active", "past_due", "unpaid")


# The objects whose state holds steps: what the store counts writes of (Store.watch).
STEP_TYPES = ("invoice", "subscription", "dispute")


def advance(ctx: Ctx, clock_id: str | None, target: int) -> None:
    """Process, in time order, everything on this clock that falls due up to `target`.

    Finding the steps reads every invoice, subscription and dispute, which takes seconds in a
    filled sandbox. So the time of the next step is kept, with the count of their writes when
    it was found: while none was written since and that time is still ahead, a tick is one
    read, not a scan.
    """
    memo_key = f"next_step:{clock_id or 'global'}"
    next_at, seen_writes = json.loads(ctx.store.meta(memo_key, "[null, -1]"))
    if seen_writes == ctx.store.writes() and (next_at is None or next_at > target):
        return  # nothing written since the last scan, and nothing due until next_at (or ever)
    try:
        while True:
            steps = list(_steps(ctx, clock_id))
            due = [s for s in steps if s[0] <= target]
            if not due:
                break
            when, _, action, object_id = min(due, key=lambda s: (s[0], s[1]))
            ctx.pinned[clock_id] = when
            action(ctx, ctx.store.get(object_id) or {})
    finally:
        ctx.pinned.pop(clock_id, None)
    upcoming = min((step[0] for step in steps), default=None)
    if [upcoming, ctx.store.writes()] != [next_at, seen_writes]:
        ctx.store.set_meta(memo_key, json.dumps([upcoming, ctx.store.writes()]))


def _steps(ctx: Ctx, clock_id: str | None) -> Iterator[Step]:
    # The second element orders steps due at the same second: invoices settle before the
    # subscription they belong to moves on.
    for invoice in ctx.store.all("invoice"):
        if invoice["test_clock"] != clock_id:
            continue
        if invoice["status"] == "draft" and invoice["automatically_finalizes_at"]:
            yield invoice["automatically_finalizes_at"], 0, finalize_and_pay, invoice["id"]
        if invoice["status"] == "open" and invoice["next_payment_attempt"]:
            yield invoice["next_payment_attempt"], 1, attempt_payment, invoice["id"]
    for dispute in ctx.store.all("dispute"):
        step = next_step(dispute)
        if step is not None and dispute.get("_test_clock") == clock_id:
            yield step[0], 1, step[1], dispute["id"]
    for sub in ctx.store.all("subscription"):
        if sub["test_clock"] != clock_id or sub["status"] not in _LIVE_STATUSES:
            continue
        if sub["status"] == "trialing" and not sub.get("_trial_will_end_sent"):
            yield sub["trial_end"] - TRIAL_WILL_END_NOTICE, 2, _trial_will_end, sub["id"]
        if sub["pending_update"]:
            yield sub["pending_update"]["expires_at"], 2, expire_pending_update, sub["id"]
        yield period_end(sub), 3, _end_period, sub["id"]


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
