"""What a usage event asks for, and what recording it did (kept, and replayed to retries)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.entitlements.checks import CreditDraw
from app.entitlements.costs import CostSource, EventCost, model_label


# Slotted, not frozen, as UsageResult below: a batch makes a thousand.
@dataclass(slots=True)
class UsageEventInput:
    """One event of a batch or an imported file."""

    customer_reference_id: str
    idempotency_key: str
    event_name: str
    feature_key: str
    units: int
    cost_input: Any = None
    occurred_at: datetime | None = None
    # What it cost to serve, worked out from cost_input when the event is validated.
    cost: EventCost | None = None

    def body(self) -> dict[str, Any]:
        """What a retry with the same key must repeat exactly."""
        return {
            "event_name": self.event_name,
            "feature_key": self.feature_key,
            "units": self.units,
            "cost_input": self.cost_input,
        }


# Slotted, not frozen: a batch makes one per event, and a frozen one costs six times as much.
# Treat it as a value all the same: recording sets event_id once, as its insert gives it.
@dataclass(slots=True)
class UsageResult:
    """What one recorded event drew from where; a retry with its key gets the same back."""

    event_id: int
    idempotency_key: str
    feature_key: str
    units: int
    from_included: int
    from_credits: list[CreditDraw]
    overage_units: int
    overage_billable: bool
    used: int
    limit: int | None
    remaining: int | None
    credit_balance: int
    cost: EventCost | None = None
    replayed: bool = field(default=False, compare=False)

    def stored(self) -> list[Any]:
        """The result as kept with the event, whose row holds its id, key, feature and units: the
        values of STORED_FIELDS in order, each credit draw as [pool, denomination, amount]."""
        return [
            self.from_included,
            [[draw.pool_key, draw.denomination, draw.amount] for draw in self.from_credits],
            self.overage_units,
            self.overage_billable,
            self.used,
            self.limit,
            self.remaining,
            self.credit_balance,
        ]

    @classmethod
    def from_stored(
        cls,
        stored: list[Any] | dict[str, Any],
        event: tuple[int, str, str, int],
        cost: EventCost | None = None,
    ) -> UsageResult:
        """The first result of an event (its id, key, feature and units, and the cost its row
        keeps), returned to a retry."""
        values: list[Any]
        if isinstance(stored, dict):
            # As earlier versions kept it: an object that also repeated the row's key, feature
            # and units.
            values = [stored[name] for name in STORED_FIELDS]
            draws = [CreditDraw(**draw) for draw in stored["from_credits"]]
        else:
            values = stored
            draws = [CreditDraw(*draw) for draw in stored[1]]
        from_included, _, overage_units, overage_billable, used, limit, remaining, balance = values
        event_id, key, feature_key, units = event
        return cls(
            event_id,
            key,
            feature_key,
            units,
            from_included,
            draws,
            overage_units,
            overage_billable,
            used,
            limit,
            remaining,
            balance,
            cost,
            replayed=True,
        )


def stored_cost(nanos: int | None, source: str | None, cost_input: Any) -> EventCost | None:
    """An event's cost as its row keeps it (no source: the event had nothing to price), with
    the model its costInput names."""
    if source is None:
        return None
    return EventCost(nanos, CostSource(source), model_label(cost_input))


# A stored result is a JSON array of these values, in this order. As an object with these keys it
# was about two fifths of the bytes a batch sends for each event row, and a batch of 1,000 took
# 34 ms to insert on PostgreSQL, against 24-29 ms as arrays (bench/README.md).
STORED_FIELDS = (
    "from_included",
    "from_credits",
    "overage_units",
    "overage_billable",
    "used",
    "limit",
    "remaining",
    "credit_balance",
)
