"""Sixteen writers on one credit pool: no overdraw, every event recorded exactly once (on SQLite
too, where the writers take turns at the whole database)."""

from __future__ import annotations

import threading

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.entitlements.models import OverageOutbox, UsageCounter, UsageEvent
from app.entitlements.usage import (
    UsageError,
    UsageEventInput,
    UsageResult,
    customer_by_reference,
    record_batch,
)
from app.extensions import db
from tests.conftest import MigratedDatabase
from tests.entitlements.helpers import (
    balance,
    locked_by_another_writer,
    record,
    reference_of,
    run_at_once,
)
from tests.factories import new_subscriber
from tests.waiting import wait_until

WRITERS = 16
EVENTS_PER_WRITER = 5
UNITS = 300_000  # 40 events of 300,000 ask for 12,000,000 tokens of a 10,000,000 pool
KEYS = WRITERS * EVENTS_PER_WRITER // 2  # every key is sent by two writers at once


def test_record_event_from_16_threads_never_overdraws_or_doubles(synced: Flask) -> None:
    customer_id = new_subscriber(synced, "enterprise_monthly").id
    results: dict[str, list[UsageResult]] = {f"k{n}": [] for n in range(KEYS)}
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def writer(number: int) -> None:
        start.wait()
        try:
            for step in range(EVENTS_PER_WRITER):
                key = f"k{(number * EVENTS_PER_WRITER + step) % KEYS}"
                results[key].append(record(synced, customer_id, key, "ai_chat", UNITS))
        except BaseException as exc:
            errors.append(exc)

    run_at_once(writer, WRITERS)

    assert errors == []
    firsts = [min(sent, key=lambda result: result.replayed) for sent in results.values()]
    assert all(len({result.event_id for result in sent}) == 1 for sent in results.values())
    drawn = sum(draw.amount for result in firsts for draw in result.from_credits)
    overage = sum(result.overage_units for result in firsts)
    assert drawn + overage == KEYS * UNITS
    assert drawn == 10_000_000 - balance(synced, customer_id)
    assert balance(synced, customer_id) >= 0
    with synced.app_context():
        assert db.session.scalar(select(func.count()).select_from(UsageEvent)) == KEYS
        outbox = db.session.scalar(select(func.sum(OverageOutbox.units)))
        counted = db.session.scalar(select(func.sum(UsageCounter.used)))
        recorded = db.session.scalar(select(func.sum(UsageEvent.units)))
    assert outbox == overage == 2_000_000
    assert counted == recorded == KEYS * UNITS


def _recorded_units(app: Flask, customer_id: int) -> int:
    with app.app_context():
        units = db.session.scalar(
            select(func.sum(UsageEvent.units)).where(UsageEvent.customer_id == customer_id)
        )
        db.session.rollback()
        return int(units or 0)


def test_batch_records_customers_no_one_holds_while_it_waits_for_the_rest(
    synced: Flask, migrated_database: MigratedDatabase
) -> None:
    if migrated_database.backend != "postgresql":
        pytest.skip("SQLite has one writer at a time: a batch waits for the whole database")
    held = new_subscriber(synced, "free").id
    free = new_subscriber(synced, "free", email="bob@example.com").id
    events = [
        UsageEventInput(reference_of(synced, held), "held-1", "calls", "api_calls", 5),
        UsageEventInput(reference_of(synced, free), "free-1", "calls", "api_calls", 7),
        UsageEventInput(reference_of(synced, held), "held-2", "calls", "api_calls", 11),
    ]
    answers: list[list[UsageResult | UsageError]] = []

    def batch() -> None:
        with synced.app_context():
            answers.append(record_batch(customer_by_reference, events, db.session.commit))
            db.session.commit()

    url = synced.config["SQLALCHEMY_DATABASE_URI"]
    with locked_by_another_writer(url, reference_of(synced, held)):
        waiting = threading.Thread(target=batch)
        waiting.start()
        # The free customer's event is committed while the batch still waits for the other
        # (well inside the 5 s a writer waits for a lock).
        wait_until(lambda: _recorded_units(synced, free), timeout=3)
        assert _recorded_units(synced, free) == 7
        assert _recorded_units(synced, held) == 0
        assert waiting.is_alive()
    waiting.join(timeout=10)

    (outcomes,) = answers
    assert all(isinstance(outcome, UsageResult) for outcome in outcomes)
    assert [outcome.used for outcome in outcomes if isinstance(outcome, UsageResult)] == [5, 7, 16]
    assert (_recorded_units(synced, held), _recorded_units(synced, free)) == (16, 7)


BATCHES = 9  # each sent whole by two of six writers, three batches a writer
EVENTS_PER_BATCH = 20  # alternating between two customers


def test_batches_from_6_threads_on_shared_customers_record_each_event_once(synced: Flask) -> None:
    customers = [
        new_subscriber(synced, "enterprise_monthly", email=email).id
        for email in ("ada@example.com", "bob@example.com")
    ]
    references = [reference_of(synced, customer_id) for customer_id in customers]
    answers: dict[str, list[UsageResult | UsageError]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def writer(number: int) -> None:
        start.wait()
        try:
            for step in range(BATCHES // 3):
                batch = (number * 3 + step) % BATCHES
                events = [
                    UsageEventInput(references[n % 2], f"b{batch}-{n}", "chat", "ai_chat", UNITS)
                    for n in range(EVENTS_PER_BATCH)
                ]
                with synced.app_context():
                    outcomes = record_batch(customer_by_reference, events, db.session.commit)
                    db.session.commit()
                for event, outcome in zip(events, outcomes, strict=True):
                    answers.setdefault(event.idempotency_key, []).append(outcome)
        except BaseException as exc:
            errors.append(exc)

    run_at_once(writer, 6)

    assert errors == []
    assert len(answers) == BATCHES * EVENTS_PER_BATCH
    for sent in answers.values():
        assert len(sent) == 2
        assert all(isinstance(outcome, UsageResult) for outcome in sent)
        assert len({outcome.event_id for outcome in sent if isinstance(outcome, UsageResult)}) == 1
    firsts = [
        min(sent, key=lambda outcome: getattr(outcome, "replayed", True))
        for sent in answers.values()
    ]
    each = BATCHES * EVENTS_PER_BATCH // 2 * UNITS  # 27,000,000 tokens asked of each customer
    for customer_id in customers:
        assert balance(synced, customer_id) == 0  # 10,000,000 tokens of credit, all drawn
        assert _recorded_units(synced, customer_id) == each
        with synced.app_context():
            counted = db.session.scalar(
                select(UsageCounter.used).where(UsageCounter.customer_id == customer_id)
            )
            billed = db.session.scalar(
                select(func.sum(OverageOutbox.units)).where(
                    OverageOutbox.customer_id == customer_id
                )
            )
        assert counted == each
        assert billed == each - 10_000_000
    drawn = sum(
        draw.amount
        for outcome in firsts
        if isinstance(outcome, UsageResult)
        for draw in outcome.from_credits
    )
    assert drawn == 2 * 10_000_000
