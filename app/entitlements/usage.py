"""Recording usage events: once per idempotency key, drawn from included units, credits, overage."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import Select, select

from app.accounts.models import Customer
from app.catalog import Catalog, current_catalog
from app.clock import now
from app.entitlements.access import feature_definition
from app.entitlements.checks import validate_units
from app.entitlements.costs import parse_cost_input, price_event
from app.entitlements.errors import InvalidUsage, UnknownCustomer, UsageError
from app.entitlements.fastpath.combining import GroupCommit
from app.entitlements.ledger import lock_customers_by_reference
from app.entitlements.recording import CommitPart, record_all, record_in_turn
from app.entitlements.results import UsageEventInput, UsageResult
from app.entitlements.sql import one_of, statement_per_dialect
from app.extensions import db

__all__ = [
    "MAX_BATCH",
    "UsageEventInput",
    "UsageResult",
    "customer_by_reference",
    "record_batch",
    "record_event",
    "record_one",
]

MAX_BATCH = 1000
MAX_TEXT = 255

# Finds the customers' ids by the operator's reference ids; unknown ones are left out.
CustomerLookup = Callable[[Collection[str]], Mapping[str, int]]


def _text(value: str, name: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise InvalidUsage(f"{name} must be 1 to {MAX_TEXT} characters.", code=f"invalid_{name}")
    return value


def _validate(event: UsageEventInput, catalog: Catalog, at: datetime) -> None:
    """Raise the first thing wrong with an event, before anything is locked or read; then price
    it (``at``: the batch's time, for an event that does not say when it happened)."""
    _text(event.idempotency_key, "idempotency_key")
    _text(event.event_name, "event_name")
    validate_units(event.units)
    feature_key = event.feature_key
    if feature_definition(feature_key, catalog).kind != "metered":
        raise InvalidUsage(f"{feature_key} is on or off; it has no usage.", code="not_metered")
    cost_input = parse_cost_input(event.cost_input, catalog.currency)
    event.cost = price_event(cost_input, feature_key, event.units, event.occurred_at or at, catalog)


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
    event = UsageEventInput(
        customer.reference_id,
        idempotency_key,
        event_name,
        feature_key,
        units,
        cost_input,
        occurred_at,
    )
    _validate(event, current_catalog(), now())
    (outcome,) = record_all([(customer.id, event)])
    if isinstance(outcome, UsageError):
        raise outcome
    return outcome


@statement_per_dialect
def _customers_by_reference() -> Select[str, int]:
    return select(Customer.reference_id, Customer.id).where(
        one_of(Customer.reference_id, "reference_ids")
    )


def customer_by_reference(reference_ids: Collection[str]) -> dict[str, int]:
    """The ids of the customers with these reference ids, in one query."""
    rows = db.session.connection().execute(
        _customers_by_reference(), {"reference_ids": list(reference_ids)}
    )
    return dict(rows.all())


def record_batch(
    customer_lookup: CustomerLookup,
    events: Sequence[UsageEventInput],
    commit_part: CommitPart,
) -> list[UsageResult | UsageError]:
    """Record up to 1,000 events: one result or error each; retrying the whole batch is safe.
    On PostgreSQL the events of the customers no other writer holds may be committed through
    ``commit_part`` before it waits for the others (see record_in_turn)."""
    if len(events) > MAX_BATCH:
        raise InvalidUsage(f"A batch holds at most {MAX_BATCH:,} events.", code="batch_too_large")
    customers = customer_lookup({event.customer_reference_id for event in events})
    return _record_known(
        customers, events, lambda valid: record_in_turn(valid, commit_part), validate=True
    )


def _record_known(
    customers: Mapping[str, int],
    events: Sequence[UsageEventInput],
    record: Callable[[list[tuple[int, UsageEventInput]]], list[UsageResult | UsageError]],
    *,
    validate: bool,
) -> list[UsageResult | UsageError]:
    """The events of the ``customers`` found (by reference id) recorded by ``record``, each
    checked first unless ``validate`` is False (then _validate() has checked it already)."""
    outcomes: list[UsageResult | UsageError | None] = []
    valid: list[tuple[int, UsageEventInput]] = []
    catalog = current_catalog()
    at = now()
    for event in events:
        customer_id = customers.get(event.customer_reference_id)
        if customer_id is None:
            outcomes.append(UnknownCustomer(f"No customer {event.customer_reference_id!r}."))
            continue
        if validate:
            try:
                _validate(event, catalog, at)
            except UsageError as exc:
                # Every refusal comes before anything is written, so the batch goes on.
                outcomes.append(exc)
                continue
        outcomes.append(None)
        valid.append((customer_id, event))
    recorded = iter(record(valid) if valid else [])
    return [outcome if outcome is not None else next(recorded) for outcome in outcomes]


# Where the app keeps its group commit of single events (fastpath/combining.py).
SINGLE_EVENTS = "tollgate.single_events"


def record_one(event: UsageEventInput, commit: Callable[[], None]) -> UsageResult | UsageError:
    """Record one event, as the API's single events come: checked at once (InvalidUsage and
    friends are raised), then recorded with the events that reach this worker meanwhile, as one
    batch in one transaction committed by ``commit`` (fastpath/combining.py). Its result, or
    why it was refused: UnknownCustomer when no customer has its reference id."""
    _validate(event, current_catalog(), now())
    group: GroupCommit[UsageEventInput, UsageResult | UsageError] = (
        current_app.extensions.setdefault(SINGLE_EVENTS, GroupCommit(MAX_BATCH))
    )

    def record(events: list[UsageEventInput]) -> list[UsageResult | UsageError]:
        # A few events of a few customers: found and locked in one statement, recorded in one
        # part (record_in_turn's halves pay for themselves only in large batches).
        customers = lock_customers_by_reference({event.customer_reference_id for event in events})
        outcomes = _record_known(
            customers, events, lambda valid: record_all(valid, locked=True), validate=False
        )
        commit()
        return outcomes

    return group.submit(event, record)
