"""What a usage event asks for, and what recording it did (kept, and replayed to retries)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.entitlements.checks import CreditDraw


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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

    def as_recorded(self, event_id: int, *, replayed: bool) -> UsageResult:
        """This result with its event's id; dataclasses.replace() costs twice as much, as it
        looks the fields up again for every event of a batch."""
        return UsageResult(
            event_id,
            self.idempotency_key,
            self.feature_key,
            self.units,
            self.from_included,
            self.from_credits,
            self.overage_units,
            self.overage_billable,
            self.used,
            self.limit,
            self.remaining,
            self.credit_balance,
            replayed,
        )

    def stored(self) -> dict[str, Any]:
        """The result as kept with the event (whose row holds the id)."""
        # vars(), not asdict(): asdict deep-copies every field, a cost paid per event of a batch.
        data = dict(vars(self))
        del data["replayed"], data["event_id"]
        data["from_credits"] = [dict(vars(draw)) for draw in self.from_credits]
        return data

    @classmethod
    def from_stored(cls, data: dict[str, Any], event_id: int) -> UsageResult:
        """The first result of an event, returned to a retry."""
        draws = [CreditDraw(**draw) for draw in data["from_credits"]]
        return cls(**{**data, "event_id": event_id, "from_credits": draws, "replayed": True})
