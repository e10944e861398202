"""The margin side of a volume fill: every period of every subscription as the sync path records
it (billing_periods), and what the usage events' model calls cost, per event and summed per
period (usage_costs), as recording would have left them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from app.billing.revenue import months_in
from app.catalog import Catalog
from app.entitlements.costs import NANOS
from bench.volume_history import History, monthly_value
from bench.volume_usage import period_key
from bench.volume_writer import Writer, table

# The model bench/volume_usage.py's chat events name, priced at the catalog's own rate for it.
MODEL = "openai/gpt-4o-mini"
MILLION = 1_000_000


def write_periods(
    writer: Writer, histories: list[tuple[int, History]], catalog: Catalog, now: datetime
) -> None:
    """Each period that has started, with what it billed (nothing during a trial); an ended
    subscription's last period ends when the subscription did."""
    writer.write(
        table("billing_periods"),
        [
            "customer_id",
            "period_key",
            "stripe_subscription_id",
            "plan_key",
            "starts_at",
            "ends_at",
            "trialing",
            "recurring_amount",
            "currency",
            "floor_billed",
        ],
        _periods(histories, catalog.currency, now),
    )


def _periods(
    histories: list[tuple[int, History]], currency: str, now: datetime
) -> Iterator[tuple[Any, ...]]:
    for customer_id, history in histories:
        for sub in history.subs:
            for period in sub.periods:
                if period.start > now:
                    continue
                trialing = period.state == "trialing"
                months = months_in(period.plan.interval, 1)
                billed = monthly_value(period.plan, period.quantity) * months
                ends_at = min(period.end, sub.ended_at) if sub.ended_at else period.end
                yield (
                    customer_id,
                    period_key(sub, period),
                    f"sub_vol{sub.serial}",
                    period.plan.key,
                    period.start,
                    ends_at,
                    trialing,
                    0 if trialing else int(billed),
                    currency,
                    0,
                )


def write_costs(connection: Connection, catalog: Catalog, after: int) -> None:
    """Price the chat events numbered after ``after`` (a third of their units input tokens, the
    rest output, as bench/volume_usage.py states them) at the catalog's rate, then sum them per
    period."""
    rate = catalog.costs.models[MODEL]
    # Cents per million tokens are whole nanos (billionths of a cent) per token.
    per_input, per_output = rate.input * NANOS // MILLION, rate.output * NANOS // MILLION
    connection.execute(
        text(
            "UPDATE usage_events SET cost_source = 'operator', cost_nanos = "
            "(units / 3) * :per_input + (units - units / 3) * :per_output "
            "WHERE feature_key = 'ai_chat' AND id > :after"
        ),
        {"per_input": int(per_input), "per_output": int(per_output), "after": after},
    )
    connection.execute(
        text(
            "INSERT INTO usage_costs "
            "(period_key, customer_id, feature_key, model, nanos, events, unpriced) "
            "SELECT period_key, customer_id, feature_key, :model, sum(cost_nanos), count(*), 0 "
            "FROM usage_events WHERE cost_nanos IS NOT NULL AND id > :after "
            "GROUP BY period_key, customer_id, feature_key"
        ),
        {"model": MODEL, "after": after},
    )
