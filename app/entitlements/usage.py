"""Recording usage events: once per idempotency key, drawn from included units, credits, overage."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.accounts.models import Customer
from app.catalog.stripe_sync import meter_event_name
from app.clock import now
from app.entitlements.access import LIMIT_EXCEEDED, feature_definition
from app.entitlements.alerts import note_thresholds
from app.entitlements.checks import CreditDraw, Evaluation, evaluate, validate_units
from app.entitlements.errors import (
    IdempotencyConflict,
    InvalidUsage,
    LimitExceeded,
    NotEntitled,
    UnknownCustomer,
    UsageError,
)
from app.entitlements.ledger import expire_due, lock_customer_row, move
from app.entitlements.models import LedgerKind, OverageOutbox, UsageEvent
from app.extensions import db

MAX_BATCH = 1000
MAX_TEXT = 255


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

    def stored(self) -> dict[str, Any]:
        """The result as kept with the event."""
        data = asdict(self)
        del data["replayed"]
        return data

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> UsageResult:
        """The first result of an event, returned to a retry."""
        draws = [CreditDraw(**draw) for draw in data["from_credits"]]
        return cls(**{**data, "from_credits": draws, "replayed": True})


def _text(value: str, name: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise InvalidUsage(f"{name} must be 1 to {MAX_TEXT} characters.", code=f"invalid_{name}")
    return value


def record_event(
    customer: Customer,
    *,
    idempotency_key: str,
    event_name: str,
    feature_key: str,
    units: int,
    cost_input: Any = None,
    occurred_at: datetime | None = None,
) -> UsageResult:
    """Record ``units`` of usage once per key; a retry returns the first result unchanged."""
    _text(idempotency_key, "idempotency_key")
    _text(event_name, "event_name")
    validate_units(units)
    if feature_definition(feature_key).kind != "metered":
        raise InvalidUsage(f"{feature_key} is on or off; it has no usage.", code="not_metered")
    body = {
        "event_name": event_name,
        "feature_key": feature_key,
        "units": units,
        "cost_input": cost_input,
    }
    lock_customer_row(customer.id)
    stored = _stored_event(customer.id, idempotency_key)
    if stored is not None:
        return _replay(stored, body)
    at = now()
    evaluation = evaluate(customer, feature_key, units, at)
    _refuse(evaluation)
    expire_due(customer.id, at)
    event = UsageEvent(
        customer_id=customer.id,
        idempotency_key=idempotency_key,
        period_key=evaluation.access.period_key,
        occurred_at=occurred_at or at,
        recorded_at=at,
        **body,
    )
    try:
        with db.session.begin_nested():
            db.session.add(event)
    except IntegrityError:
        # A writer that did not take the customer's lock stored the key first: its result wins.
        stored = _stored_event(customer.id, idempotency_key)
        if stored is None:
            raise
        return _replay(stored, body)
    return _apply(event, evaluation)


def _refuse(evaluation: Evaluation) -> None:
    """Raise when the event may not be recorded; running out of credits is not a refusal."""
    if evaluation.access.refusal is not None:
        raise NotEntitled(
            f"The customer may not use this feature ({evaluation.access.refusal}).",
            reason=evaluation.access.refusal,
        )
    if evaluation.refusal == LIMIT_EXCEEDED:
        raise LimitExceeded(
            f"{evaluation.units:,} more would pass this period's limit of {evaluation.limit:,}."
        )


def _apply(event: UsageEvent, evaluation: Evaluation) -> UsageResult:
    """Draw the credits, queue billable overage, and keep the result with the event."""
    for lot, amount in evaluation.from_lots:
        move(lot, LedgerKind.DEDUCT, -amount, f"usage:{event.id}:{lot.id}")
    if evaluation.overage and evaluation.overage_billable:
        db.session.add(
            OverageOutbox(
                usage_event_id=event.id,
                customer_id=event.customer_id,
                event_name=meter_event_name(event.feature_key),
                period_key=event.period_key,
                units=evaluation.overage,
                occurred_at=event.occurred_at,
            )
        )
    used = evaluation.used + event.units
    limit = evaluation.limit
    result = UsageResult(
        event_id=event.id,
        idempotency_key=event.idempotency_key,
        feature_key=event.feature_key,
        units=event.units,
        from_included=evaluation.from_included,
        from_credits=evaluation.credit_draws(),
        overage_units=evaluation.overage,
        overage_billable=evaluation.overage_billable,
        used=used,
        limit=limit,
        remaining=max(limit - used, 0) if limit is not None else None,
        credit_balance=evaluation.credit_balance,
    )
    event.result = result.stored()
    note_thresholds(event.customer_id, evaluation)
    db.session.flush()
    return result


def _stored_event(customer_id: int, idempotency_key: str) -> UsageEvent | None:
    return db.session.scalar(
        select(UsageEvent).where(
            UsageEvent.customer_id == customer_id, UsageEvent.idempotency_key == idempotency_key
        )
    )


def _replay(stored: UsageEvent, body: dict[str, Any]) -> UsageResult:
    first = {name: getattr(stored, name) for name in body}
    if first != body:
        differing = ", ".join(name for name in body if first[name] != body[name])
        raise IdempotencyConflict(
            f"This idempotency key was used for a different event ({differing} differ)."
        )
    return UsageResult.from_stored(stored.result)


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


def customer_by_reference(reference_id: str) -> Customer | None:
    """The customer with the operator's reference id."""
    return db.session.scalar(select(Customer).where(Customer.reference_id == reference_id))


def record_batch(
    customer_lookup: Callable[[str], Customer | None], events: Sequence[UsageEventInput]
) -> list[UsageResult | UsageError]:
    """Record up to 1,000 events: one result or error each; retrying the whole batch is safe."""
    if len(events) > MAX_BATCH:
        raise InvalidUsage(f"A batch holds at most {MAX_BATCH:,} events.", code="batch_too_large")
    outcomes: list[UsageResult | UsageError] = []
    for item in events:
        customer = customer_lookup(item.customer_reference_id)
        if customer is None:
            outcomes.append(UnknownCustomer(f"No customer {item.customer_reference_id!r}."))
            continue
        try:
            outcomes.append(
                record_event(
                    customer,
                    idempotency_key=item.idempotency_key,
                    event_name=item.event_name,
                    feature_key=item.feature_key,
                    units=item.units,
                    cost_input=item.cost_input,
                    occurred_at=item.occurred_at,
                )
            )
        except UsageError as exc:
            # Every refusal is raised before anything is written, so the batch goes on.
            outcomes.append(exc)
    return outcomes
