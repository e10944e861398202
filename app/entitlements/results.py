"""What a usage event asks for, and what recording it did (kept, and replayed to retries)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.entitlements.checks import CreditDraw


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
    replayed: bool = field(default=False, compare=False)

    def stored(self) -> dict[str, Any]:
        """The result as kept with the event (whose row holds the id)."""
        return {
            "idempotency_key": self.idempotency_key,
            "feature_key": self.feature_key,
            "units": self.units,
            "from_included": self.from_included,
            "from_credits": [_stored_draw(draw) for draw in self.from_credits],
            "overage_units": self.overage_units,
            "overage_billable": self.overage_billable,
            "used": self.used,
            "limit": self.limit,
            "remaining": self.remaining,
            "credit_balance": self.credit_balance,
        }

    @classmethod
    def from_stored(cls, data: dict[str, Any], event_id: int) -> UsageResult:
        """The first result of an event, returned to a retry."""
        draws = [CreditDraw(**draw) for draw in data["from_credits"]]
        return cls(**{**data, "event_id": event_id, "from_credits": draws, "replayed": True})


def _stored_draw(draw: CreditDraw) -> dict[str, Any]:
    return {"pool_key": draw.pool_key, "denomination": draw.denomination, "amount": draw.amount}
