"""The records of a volume fill that follow from its billing: a revenue snapshot per plan and
day, the webhook event log, and the operators' audit log."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from app.webhooks.processing import MAX_ATTEMPTS
from bench.volume_billing import CustomerRow, Event
from bench.volume_history import History, Simulator, add_months, monthly_value
from bench.volume_writer import Writer, table

if TYPE_CHECKING:
    from bench.volume_data import Volume


def write_snapshots(
    writer: Writer,
    volume: Volume,
    histories: list[tuple[int, History]],
    now: datetime,
    simulator: Simulator,
    currency: str,
) -> None:
    """A snapshot per plan for every day of the history, from what each subscription counted
    as at the start of that day (days already snapshotted are left as they were)."""
    first = add_months(now, -volume.months).date()
    day0 = datetime.combine(first, datetime.min.time(), UTC)
    days = (now.date() - first).days + 1
    # plan key -> figure -> change at each day (summed into each day's value below)
    deltas: dict[str, dict[str, list[int]]] = defaultdict(
        lambda: {name: [0] * (days + 1) for name in FIGURES}
    )
    tiers: dict[str, str] = {}
    for _, history in histories:
        for sub in history.subs:
            until = sub.live_until(now)
            for period in sub.periods:
                if period.state == "unpaid":
                    continue
                start, end = period.start, min(period.end, until)
                if end <= start:
                    continue
                tiers[period.plan.key] = period.plan.tier
                amount = monthly_value(period.plan, period.quantity)
                figures = deltas[period.plan.key]
                begin = _day_index(day0, start)
                stop = min(_day_index(day0, end), days)
                if begin >= stop:
                    continue
                counts = {
                    "trialing": {"trialing": 1, "trial_pipeline": amount},
                    "active": {"mrr": amount, "subscriptions": 1},
                    "past_due": {"mrr": amount, "past_due_mrr": amount, "subscriptions": 1},
                }[period.state]
                for name, value in counts.items():
                    figures[name][begin] += value
                    figures[name][stop] -= value
    snapshots = table("revenue_snapshots")
    taken = {
        tuple(row)
        for row in writer.connection.execute(
            select(snapshots.c.day, snapshots.c.plan_key, snapshots.c.currency)
        )
    }
    rows = []
    for plan_key, figures in sorted(deltas.items()):
        running = dict.fromkeys(FIGURES, 0)
        for index in range(days):
            for name in FIGURES:
                running[name] += figures[name][index]
            day = first + timedelta(days=index)
            if (day, plan_key, currency) in taken:
                continue
            rows.append(
                (
                    simulator.next_serial("revenue_snapshots"),
                    day,
                    plan_key,
                    tiers[plan_key],
                    currency,
                    *(running[name] for name in FIGURES),
                )
            )
    writer.write(snapshots, ["id", "day", "plan_key", "tier", "currency", *FIGURES], rows)


FIGURES = ("mrr", "past_due_mrr", "subscriptions", "trialing", "trial_pipeline")


def _day_index(day0: datetime, moment: datetime) -> int:
    """The first day whose start is at or after ``moment``."""
    seconds = (moment - day0).total_seconds()
    return max(0, -int(-seconds // 86_400))


def write_webhook_events(
    writer: Writer, volume: Volume, simulator: Simulator, events: list[Event], now: datetime
) -> None:
    """The event log in the order events came; a share failed: some still retried, some dead."""
    rng = simulator.rng
    events.sort(key=lambda event: event[3])
    failing = max(2, round(volume.webhook_failure_rate * len(events))) if events else 0
    failed = sorted(rng.sample(range(len(events)), min(failing, len(events))))
    dying, failed_set = set(failed[::3]), set(failed)
    rows = []
    row: tuple[datetime | None, int, str | None, datetime | None, datetime | None]
    for index, (kind, object_id, customer, at) in enumerate(events):
        serial = simulator.next_serial("stripe_events")
        received = at + timedelta(seconds=rng.randint(1, 30))
        if index not in failed_set:
            row = (received + timedelta(milliseconds=rng.randint(20, 400)), 1, None, None, None)
        elif index in dying:
            row = (
                None,
                MAX_ATTEMPTS,
                "Stripe did not answer: timed out",
                None,
                received + timedelta(hours=30),
            )
        else:
            retry = now + timedelta(minutes=rng.randint(1, 120))
            row = (None, rng.randint(1, MAX_ATTEMPTS - 1), "IntegrityError: deadlock", retry, None)
        processed, attempts, error, next_attempt, dead = row
        rows.append(
            (
                serial,
                f"evt_vol{serial}",
                kind,
                object_id,
                customer,
                at,
                received,
                processed,
                attempts,
                error,
                next_attempt,
                dead,
            )
        )
    writer.write(
        table("stripe_events"),
        [
            "id",
            "event_id",
            "type",
            "object_id",
            "stripe_customer_id",
            "stripe_created",
            "received_at",
            "processed_at",
            "attempts",
            "last_error",
            "next_attempt_at",
            "dead_at",
        ],
        rows,
    )


def write_audit(
    writer: Writer,
    volume: Volume,
    simulator: Simulator,
    operators: list[tuple[int, str]],
    customers: list[CustomerRow],
    now: datetime,
) -> None:
    """Operators' credit grants with their reasons, over the months of the history."""
    rng, oldest = simulator.rng, add_months(now, -volume.months)
    rows = []
    moments = sorted(oldest + (now - oldest) * rng.random() for _ in range(volume.audit_entries))
    for at in moments:
        operator_id, email = rng.choice(operators)
        customer = rng.choice(customers)
        balance, amount = rng.randint(0, 2_000_000), rng.choice((50_000, 100_000, 250_000))
        rows.append(
            (
                simulator.next_serial("audit_log"),
                at,
                operator_id,
                email,
                "grant_credits",
                customer.id,
                "ai_tokens",
                json.dumps({"balance": balance}),
                json.dumps({"balance": balance + amount}),
                rng.choice(("Outage credit", "Goodwill after a billing error", "Pilot extension")),
            )
        )
    writer.write(
        table("audit_log"),
        [
            "id",
            "at",
            "operator_id",
            "operator_email",
            "action",
            "customer_id",
            "subject",
            "before",
            "after",
            "reason",
        ],
        rows,
    )
