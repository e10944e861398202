"""The usage side of a volume fill: usage events with their counters, and credit pools, lots and
an append-only ledger whose sums are the balances, as recording would have left them."""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from app.catalog.schema import MeteredAllowance
from bench.volume_history import History, Period, Simulator, Sub
from bench.volume_writer import Writer, table

if TYPE_CHECKING:
    from bench.volume_data import Volume

EVENT_NAMES = {"api_calls": "api.request", "ai_chat": "chat.completion"}


@dataclass
class Lot:
    """A plan's credits for one period, and the ledger entries that moved them."""

    id: int
    pool_id: int
    period: Period
    sub: Sub
    amount: int
    remaining: int
    source: str
    entries: list[tuple[datetime, str, int, str]] = field(default_factory=list)


@dataclass
class CustomerUsage:
    """One customer's windows of usage (a period while its subscription was live) and lots."""

    customer_id: int
    windows: list[tuple[datetime, datetime, Sub, Period]]
    lots: dict[int, Lot]  # id(period) -> lot


def period_key(sub: Sub, period: Period) -> str:
    """As app.entitlements.access.name_period names it."""
    return f"sub_vol{sub.serial}:{int(period.start.timestamp())}"


def write_usage(
    writer: Writer,
    volume: Volume,
    simulator: Simulator,
    histories: list[tuple[int, History]],
    now: datetime,
) -> None:
    """Usage events spread over the customers with a long tail, then what they left behind."""
    rng = simulator.rng
    since = now - timedelta(days=volume.usage_days)
    pools: dict[tuple[int, str], list[Any]] = {}
    customers: list[CustomerUsage] = []
    for customer_id, history in histories:
        usage = CustomerUsage(customer_id, [], {})
        for sub in history.subs:
            until = sub.live_until(now)
            for period in sub.periods:
                if period.state in ("unpaid", "past_due") and period.end <= now:
                    continue
                for grant in period.plan.credits:
                    pool = pools.setdefault(
                        (customer_id, grant.pool),
                        [
                            simulator.next_serial("credit_pools"),
                            customer_id,
                            grant.pool,
                            grant.denomination,
                            0,
                        ],
                    )
                    lot = Lot(
                        simulator.next_serial("credit_lots"),
                        pool[0],
                        period,
                        sub,
                        grant.amount,
                        0,
                        f"plan:{period_key(sub, period)}",
                    )
                    lot.entries.append((period.start, "grant", grant.amount, lot.source))
                    lot.remaining = grant.amount
                    usage.lots[id(period)] = lot
                lo, hi = max(period.start, since), min(period.end, until)
                if hi > lo and period.state != "unpaid":
                    usage.windows.append((lo, hi, sub, period))
        customers.append(usage)
    active = [usage for usage in customers if usage.windows]
    counts: Counter[int] = Counter()
    if active and volume.usage_events:
        weights = [rng.paretovariate(1.16) for _ in active]
        counts = Counter(rng.choices(range(len(active)), weights, k=volume.usage_events))
    counters: dict[tuple[int, str, str], int] = defaultdict(int)
    writer.write(
        table("usage_events"),
        [
            "id",
            "customer_id",
            "idempotency_key",
            "event_name",
            "feature_key",
            "units",
            "cost_input",
            "period_key",
            "occurred_at",
            "recorded_at",
            "result",
        ],
        _events(simulator, active, counts, counters, now),
    )
    lots = [lot for usage in customers for lot in usage.lots.values()]
    entries = []
    for lot in lots:
        end = min(lot.period.end, lot.sub.ended_at or lot.period.end)
        if end <= now and lot.remaining > 0:
            kind = "clawback" if lot.sub.ended_at and end < lot.period.end else "expire"
            lot.entries.append((end, kind, -lot.remaining, f"{kind}:{lot.source}"))
            lot.remaining = 0
        for at, kind, amount, source in lot.entries:
            entries.append((at, lot.pool_id, lot.id, kind, amount, source, lot.period.plan.key))
    balances: Counter[int] = Counter()
    for lot in lots:
        balances[lot.pool_id] += lot.remaining
    entries.sort(key=lambda entry: entry[0])
    writer.write(
        table("credit_pools"),
        ["id", "customer_id", "key", "denomination", "balance"],
        ((*pool[:4], balances[pool[0]]) for pool in pools.values()),
    )
    writer.write(
        table("credit_lots"),
        [
            "id",
            "pool_id",
            "origin",
            "plan_key",
            "source",
            "amount",
            "remaining",
            "granted_at",
            "expires_at",
            "stripe_subscription_id",
        ],
        (
            (
                lot.id,
                lot.pool_id,
                "plan",
                lot.period.plan.key,
                lot.source,
                lot.amount,
                lot.remaining,
                lot.period.start,
                lot.period.end,
                f"sub_vol{lot.sub.serial}",
            )
            for lot in lots
        ),
    )
    writer.write(
        table("credit_ledger"),
        ["id", "pool_id", "lot_id", "kind", "amount", "source", "plan_key", "created_at"],
        ((simulator.next_serial("credit_ledger"), *entry[1:], entry[0]) for entry in entries),
    )
    writer.write(
        table("usage_counters"),
        ["customer_id", "feature_key", "period_key", "used"],
        ((*key, used) for key, used in counters.items()),
    )


def _events(
    simulator: Simulator,
    active: list[CustomerUsage],
    counts: Counter[int],
    counters: dict[tuple[int, str, str], int],
    now: datetime,
) -> Iterator[tuple[Any, ...]]:
    """Each customer's events in time order; usage drawn from the period's lot as recording
    draws it, the rest overage. Some customers' usage grows, some fades (accounts at risk)."""
    rng = simulator.rng
    for index in sorted(counts):
        usage, n = active[index], counts[index]
        trend = rng.choice((1.0, 1.0, 1.0, 0.4, 3.0))  # flat, growing, fading
        starts, total = [], 0.0
        for lo, hi, _, _ in usage.windows:
            starts.append(total)
            total += (hi - lo).total_seconds()
        moments = sorted(total * rng.random() ** trend for _ in range(n))
        for offset in moments:
            at_window = bisect.bisect_right(starts, offset) - 1
            lo, _, sub, period = usage.windows[at_window]
            at = lo + timedelta(seconds=offset - starts[at_window])
            yield _event(simulator, usage, sub, period, at, counters, now)


def _event(
    simulator: Simulator,
    usage: CustomerUsage,
    sub: Sub,
    period: Period,
    at: datetime,
    counters: dict[tuple[int, str, str], int],
    now: datetime,
) -> tuple[Any, ...]:
    rng = simulator.rng
    serial = simulator.next_serial("usage_events")
    feature = "ai_chat" if rng.random() < 0.4 else "api_calls"
    allowance = period.plan.features.get(feature)
    limit = allowance.limit if isinstance(allowance, MeteredAllowance) else None
    included = allowance.included if isinstance(allowance, MeteredAllowance) else 0
    billable = isinstance(allowance, MeteredAllowance) and allowance.overage_price is not None
    key = period_key(sub, period)
    used_before = counters[(usage.customer_id, feature, key)]
    cost: dict[str, Any] | None = None
    draws: list[list[Any]] = []
    lot = usage.lots.get(id(period))
    if feature == "ai_chat":
        units = rng.randint(200, 6_000)
        cost = {
            "model": "gpt-4o-mini",
            "provider": "openai",
            "inputTokens": units // 3,
            "outputTokens": units - units // 3,
        }
        from_included = 0
        drawn = min(units, lot.remaining) if lot else 0
        if lot and drawn:
            lot.remaining -= drawn
            lot.entries.append((at, "deduct", -drawn, f"usage:{serial}:{lot.id}"))
            draws = [["ai_tokens", "tokens", drawn]]
        overage = units - drawn
    else:
        units = rng.choice((1, 1, 1, 2, 5, 10))
        from_included = max(0, min(units, included - used_before))
        overage = units - from_included
    used = used_before + units
    counters[(usage.customer_id, feature, key)] = used
    remaining = None if limit is None else max(limit - used, 0)
    balance = lot.remaining if lot else 0
    result = [
        from_included,
        draws,
        overage,
        billable and overage > 0,
        used,
        limit,
        remaining,
        balance,
    ]
    recorded = min(at + timedelta(milliseconds=rng.randint(5, 900)), now)
    return (
        serial,
        usage.customer_id,
        f"vol-{serial}",
        EVENT_NAMES[feature],
        feature,
        units,
        cost,
        key,
        at,
        recorded,
        result,
    )
