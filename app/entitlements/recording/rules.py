"""One event against its batch: replay or conflict, refusal, then included units, credits in
burn order and overage, as checks.cover() reckons them; alerts once."""

from __future__ import annotations

from dataclasses import replace

from app.entitlements.alerts import short_of_thresholds, thresholds_passed
from app.entitlements.checks import Cover, burn, cover, credit_draws
from app.entitlements.errors import IdempotencyConflict, LimitExceeded, NotEntitled, UsageError
from app.entitlements.ledger import LotBalance
from app.entitlements.recording.state import Batch, NewEvent, StoredEvent
from app.entitlements.results import UsageEventInput, UsageResult


def apply_event(
    batch: Batch, customer_id: int, event: UsageEventInput
) -> UsageResult | UsageError | NewEvent:
    """One event against the batch's state: an error, a replayed result, or its new row's index."""
    body = event.body()
    first = batch.stored.get((customer_id, event.idempotency_key))
    if first is not None:
        if first.body != body:
            differing = ", ".join(name for name in body if first.body[name] != body[name])
            return IdempotencyConflict(
                f"This idempotency key was used for a different event ({differing} differ)."
            )
        return replace(first.result, replayed=True)
    held = batch.feature_state(customer_id, event.feature_key)
    access = held.access
    if access.refusal is not None:
        return NotEntitled(
            f"The customer may not use this feature ({access.refusal}).", reason=access.refusal
        )
    counter = held.counter
    used = batch.used.get(counter, 0) if access.allowance else 0
    lots = held.lots
    covered = cover(access, used, event.units, sum(lot.remaining for lot in lots) if lots else 0)
    # Access refuses nothing (above), so the limit is all that may refuse the units.
    if covered.would_exceed_limit:
        return LimitExceeded(
            f"{event.units:,} more would pass this period's limit of {covered.limit:,}."
        )
    index = len(batch.rows)
    taken = burn(lots, covered.from_credits) if covered.from_credits else []
    for lot, amount in taken:
        lot.remaining -= amount
        batch.deductions.append((index, lot, amount))
    batch.used[counter] = batch.used.get(counter, 0) + event.units
    batch.counted[counter] += event.units
    overage_billable = held.overage_billable
    if covered.overage and overage_billable:
        batch.overage.append((index, covered.overage))
    result = result_of(event, covered, overage_billable, taken, lots)
    if taken or not short_of_thresholds(used + event.units, held.alert_base):
        batch.alerts += thresholds_passed(
            customer_id, event.feature_key, covered, result.from_credits, lots
        )
    batch.results.append(result)
    cost = event.cost
    if cost is not None:
        batch.add_cost(counter, cost)
    batch.rows.append(
        {
            "customer_id": customer_id,
            "idempotency_key": event.idempotency_key,
            "period_key": counter[2],
            # None when the caller did not say: the insert takes the batch's time then.
            "occurred_at": event.occurred_at,
            "result": result.stored(),
            "cost_nanos": cost.nanos if cost else None,
            "cost_source": cost.source.value if cost else None,
            **body,
        }
    )
    new = NewEvent(index)
    batch.stored[customer_id, event.idempotency_key] = StoredEvent(body, new)
    return new


def result_of(
    event: UsageEventInput,
    covered: Cover,
    overage_billable: bool,
    taken: list[tuple[LotBalance, int]],
    lots_after: list[LotBalance],
) -> UsageResult:
    """The event's result, but its id (which the insert gives)."""
    used = covered.used + event.units
    limit = covered.limit
    return UsageResult(
        0,
        event.idempotency_key,
        event.feature_key,
        event.units,
        covered.from_included,
        credit_draws(taken) if taken else [],
        covered.overage,
        overage_billable,
        used,
        limit,
        max(limit - used, 0) if limit is not None else None,
        sum(lot.remaining for lot in lots_after) if lots_after else 0,
        event.cost,
    )


def final_outcome(
    outcome: UsageResult | UsageError | NewEvent, batch: Batch, ids: list[int]
) -> UsageResult | UsageError:
    if not isinstance(outcome, NewEvent):
        return outcome
    result = batch.results[outcome.index]
    if outcome.replayed:
        # The same key twice in one batch: the second answers the first's result, replayed.
        return replace(result, event_id=ids[outcome.index], replayed=True)
    result.event_id = ids[outcome.index]
    return result
