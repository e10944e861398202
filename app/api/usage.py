"""Entitlement checks, usage events and credit pools over the API."""

from __future__ import annotations

from typing import Any

from flask import g, jsonify, request
from pydantic import TypeAdapter, ValidationError
from werkzeug.wrappers import Response

from app.accounts.api_keys import READ, WRITE
from app.api.errors import ApiError, describe_validation, json_body, parse, request_body
from app.api.routes import bp, checks_key_itself, needs_scope
from app.api.schemas import BatchIn, EventIn, SimulationIn
from app.api.subscriptions import customer_not_found, customer_or_404
from app.api.views import cost_view, iso
from app.entitlements.checks import CreditDraw, check, check_reference, simulate, whole_number
from app.entitlements.errors import UnknownCustomer, UsageError
from app.entitlements.fastpath.gc_pause import without_collection
from app.entitlements.imports import import_usage_csv
from app.entitlements.summary import pool_summary
from app.entitlements.usage import (
    UsageEventInput,
    UsageResult,
    customer_by_reference,
    record_batch,
    record_one,
)
from app.extensions import db
from app.logs import bind_customer

MAX_CSV_BYTES = 5 * 1024 * 1024


def _ok(data: Any, status: int = 200) -> tuple[Response, int]:
    return jsonify({"data": data}), status


def _api_error(error: UsageError) -> ApiError:
    return ApiError(error.status, error.code, str(error))


def _draws(draws: list[CreditDraw]) -> list[dict[str, Any]]:
    return [
        {"pool": draw.pool_key, "denomination": draw.denomination, "amount": draw.amount}
        for draw in draws
    ]


def result_view(result: UsageResult) -> dict[str, Any]:
    """What recording an event did."""
    return {
        "eventIdempotencyKey": result.idempotency_key,
        "featureKey": result.feature_key,
        "usageUnits": result.units,
        "fromIncluded": result.from_included,
        "fromCredits": _draws(result.from_credits),
        "overageUnits": result.overage_units,
        "overageBillable": result.overage_billable,
        "usage": {"used": result.used, "limit": result.limit, "remaining": result.remaining},
        "creditBalance": result.credit_balance,
        "cost": cost_view(result.cost),
        "replayed": result.replayed,
    }


@bp.get("/entitlements/<reference_id>/<feature_key>")
@needs_scope(READ)
@checks_key_itself
def check_entitlement(reference_id: str, feature_key: str) -> tuple[Response, int]:
    """May the customer use the feature for ``units`` (default 1) now?"""
    units = whole_number(request.args.get("units", "1"))
    try:
        # First: the key (checked in the same query), so a caller without one learns nothing.
        result = check_reference(
            reference_id, feature_key, 1 if units is None else units, g.api_key_hash
        )
        if units is None:
            raise ApiError(400, "invalid_units", "units must be a positive whole number.")
        if result is None:
            # Not found in the check's one query: the usual lookup answers the usual 404.
            result = check(customer_or_404(reference_id), feature_key, units)
    except UsageError as exc:
        raise _api_error(exc) from None
    return _ok(
        {
            "customerReferenceId": reference_id,
            "featureKey": feature_key,
            "isAllowed": result.is_allowed,
            "reason": result.reason,
            "subscriptionStatus": result.subscription_status,
            "usage": {
                "used": result.used,
                "limit": result.limit,
                "remaining": result.remaining,
                "included": result.included,
                "unlimited": result.unlimited,
                "periodEnd": iso(result.period_end),
            },
            "creditBalance": result.credit_balance,
        }
    )


@bp.post("/entitlements")
@needs_scope(READ)
def simulate_entitlement() -> tuple[Response, int]:
    """Pre-flight: what an event would draw and bill, without recording it."""
    body = parse(SimulationIn, json_body())
    customer = customer_or_404(body.customerReferenceId)
    try:
        result = simulate(customer, body.featureKey, body.track.usageUnits)
    except UsageError as exc:
        raise _api_error(exc) from None
    finally:
        db.session.rollback()
    return _ok(
        {
            "customerReferenceId": body.customerReferenceId,
            "featureKey": body.featureKey,
            "isAllowed": result.is_allowed,
            "reason": result.reason,
            "simulation": {
                "eventName": body.track.eventName,
                "usageUnits": result.units,
                "wouldExceedLimit": result.would_exceed_limit,
                "fromIncluded": result.from_included,
                "fromCredits": _draws(result.from_credits),
                "overageUnits": result.overage_units,
                "overageBillable": result.overage_billable,
            },
        }
    )


def _event_input(event: EventIn) -> UsageEventInput:
    """What the engine records of an event in the API's words."""
    return UsageEventInput(
        customer_reference_id=event.customerReferenceId,
        idempotency_key=event.eventIdempotencyKey,
        event_name=event.eventName,
        feature_key=event.featureKey,
        units=event.usageUnits,
        cost_input=event.costInput,
    )


@bp.post("/events")
@needs_scope(WRITE)
def record_usage_event() -> tuple[Response, int]:
    """Record usage; the same eventIdempotencyKey again answers the first result."""
    body = parse(EventIn, json_body())
    reference_id = body.customerReferenceId
    bind_customer(reference_id)
    event = _event_input(body)
    try:
        outcome = record_one(event, db.session.commit)
    except UsageError as exc:
        raise _api_error(exc) from None
    if isinstance(outcome, UnknownCustomer):
        raise customer_not_found(reference_id)
    if isinstance(outcome, UsageError):
        raise _api_error(outcome)
    return _ok(result_view(outcome), 200 if outcome.replayed else 201)


EVENTS = TypeAdapter(list[EventIn])


def _event_or_error(raw: Any) -> EventIn | ValidationError:
    try:
        return EventIn.model_validate(raw)
    except ValidationError as exc:
        return exc


@bp.post("/events/batch")
@needs_scope(WRITE)
@without_collection
def record_usage_batch() -> tuple[Response, int]:
    """Up to 1,000 events; one result per event, in order; the whole batch is safe to retry."""
    batch = parse(BatchIn, json_body())
    inputs: list[UsageEventInput | ApiError] = []
    try:
        # All at once, as nearly every batch is valid: one call, not a thousand.
        parsed: list[EventIn | ValidationError] = list(EVENTS.validate_python(batch.events))
    except ValidationError:
        parsed = [_event_or_error(raw) for raw in batch.events]
    for index, event in enumerate(parsed):
        if isinstance(event, ValidationError):
            inputs.append(
                ApiError(400, "invalid_request", f"events[{index}]: {describe_validation(event)}")
            )
            continue
        inputs.append(_event_input(event))
    valid = [item for item in inputs if isinstance(item, UsageEventInput)]
    try:
        outcomes = iter(record_batch(customer_by_reference, valid, db.session.commit))
    except UsageError as exc:
        raise _api_error(exc) from None
    db.session.commit()
    results = []
    for item in inputs:
        outcome: UsageResult | UsageError | ApiError = (
            item if isinstance(item, ApiError) else next(outcomes)
        )
        if isinstance(outcome, UsageResult):
            results.append(
                {
                    "status": "replayed" if outcome.replayed else "recorded",
                    "result": result_view(outcome),
                }
            )
        else:
            error = outcome if isinstance(outcome, ApiError) else _api_error(outcome)
            results.append(
                {"status": "rejected", "error": {"code": error.code, "message": error.message}}
            )
    return _ok(results)


@bp.post("/usage/import")
@needs_scope(WRITE)
@without_collection
def import_usage() -> tuple[Response, int]:
    """Usage from a CSV file (the body, text/csv): a report of each rejected row and why."""
    body = request_body(MAX_CSV_BYTES, "CSV per request")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_csv", "The file is not UTF-8 text.") from None
    try:
        report = import_usage_csv(text, db.session.commit)
    except UsageError as exc:
        raise _api_error(exc) from None
    db.session.commit()
    return _ok(
        {
            "recorded": len(report.recorded),
            "rejected": [
                {"line": row.line, "code": row.code, "reason": row.reason}
                for row in report.rejected
            ],
        }
    )


@bp.get("/credits/<reference_id>/pools")
@needs_scope(READ)
def credit_pools(reference_id: str) -> tuple[Response, int]:
    """The customer's credit pools with their balances."""
    customer = customer_or_404(reference_id)
    pools = pool_summary(customer)
    db.session.rollback()
    return _ok(
        [
            {
                "key": pool.key,
                "denomination": pool.denomination,
                "balance": pool.balance,
                "expiring": pool.expiring,
                "nextExpiry": iso(pool.next_expiry),
                "renewsAmount": pool.renews_amount,
                "renewsAt": iso(pool.renews_at),
                "rollover": pool.rollover_words,
            }
            for pool in pools
        ]
    )
