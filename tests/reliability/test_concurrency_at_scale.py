"""Sixteen writers on one credit pool over HTTP, at scale: single events, batches, checks and
pre-flights for the same customer at once; every event recorded exactly once, nothing doubled,
and the ledger never overdrawn.

Each writer sends its own events, and a tenth of its neighbour's too (the same bodies), in
single events and batches of random sizes, with entitlement checks and pre-flights between
them. The customer is on Enterprise: 10,000,000 AI tokens of credit, then billable overage;
the writers ask for half as much again, so the pool runs dry while they race for it. A 503
`database_busy` is retried with the same keys, as docs/api.md asks.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from flask import Flask
from sqlalchemy import func, select

from app.accounts.models import Customer
from app.entitlements.models import (
    CreditLedgerEntry,
    CreditLot,
    CreditPool,
    LedgerKind,
    OverageOutbox,
    UsageCounter,
    UsageEvent,
)
from app.extensions import db
from tests.conftest import MigratedDatabase
from tests.reliability.conftest import Figures, at_scale

WRITERS = 16
POOL = 10_000_000  # Enterprise's AI tokens a period
DEMAND = 1.5  # the writers ask for this many times the pool
SHARED = 10  # a writer also sends every tenth of its neighbour's events


@pytest.fixture
def postgresql_only(migrated_database: MigratedDatabase) -> None:
    if migrated_database.backend != "postgresql":
        pytest.skip("SQLite has one writer at a time: writers take turns at the whole database")


@dataclass(frozen=True)
class Answer:
    """What recording an event answered: whether it was a replay, and what it drew."""

    replayed: bool
    drawn: int
    overage: int
    credit_balance: int


@dataclass
class Writer:
    """One writer's tally."""

    answers: dict[str, list[Answer]] = field(default_factory=lambda: defaultdict(list))
    requests: int = 0
    singles: int = 0
    batches: int = 0
    checks: int = 0
    busy: int = 0
    negative_balances: list[Any] = field(default_factory=list)


def event(reference_id: str, key: str, units: int) -> dict[str, Any]:
    return {
        "eventIdempotencyKey": key,
        "eventName": "chat.completion",
        "customerReferenceId": reference_id,
        "featureKey": "ai_chat",
        "usageUnits": units,
    }


def answer_of(view: dict[str, Any]) -> Answer:
    return Answer(
        bool(view["replayed"]),
        sum(draw["amount"] for draw in view["fromCredits"]),
        int(view["overageUnits"]),
        int(view["creditBalance"]),
    )


def post_until_taken(
    http: httpx.Client, tally: Writer, path: str, body: dict[str, Any]
) -> httpx.Response:
    """Post ``body``; a 503 database_busy is sent again, unchanged, after its Retry-After."""
    while True:
        tally.requests += 1
        response = http.post(path, json=body)
        if response.status_code != 503:
            return response
        assert response.json()["error"]["code"] == "database_busy", response.text
        tally.busy += 1
        time.sleep(float(response.headers.get("Retry-After", "1")))


def plan_of(number: int, per_writer: int, rng: random.Random) -> list[str]:
    """The keys a writer sends, in its order: its own, with a tenth of its neighbour's among
    them at random places."""
    own = [f"w{number}-{n}" for n in range(per_writer)]
    neighbour = [f"w{(number + 1) % WRITERS}-{n}" for n in range(0, per_writer, SHARED)]
    keys = list(own)
    for key in neighbour:
        keys.insert(rng.randrange(len(keys) + 1), key)
    return keys


def write(
    http: httpx.Client, reference_id: str, keys: list[str], units: int, rng: random.Random
) -> Writer:
    """Send ``keys`` as single events (three chunks in four) and batches of 2 to 25, with
    checks and pre-flights between."""
    tally = Writer()
    position = 0
    while position < len(keys):
        size = 1 if rng.random() < 0.75 else rng.randint(2, 25)
        chunk = keys[position : position + size]
        position += len(chunk)
        if len(chunk) == 1:
            response = post_until_taken(
                http, tally, "/events", event(reference_id, chunk[0], units)
            )
            assert response.status_code in (200, 201), response.text
            view = response.json()["data"]
            assert view["replayed"] == (response.status_code == 200)
            tally.answers[chunk[0]].append(answer_of(view))
            tally.singles += 1
        else:
            body = {"events": [event(reference_id, key, units) for key in chunk]}
            response = post_until_taken(http, tally, "/events/batch", body)
            assert response.status_code == 200, response.text
            for key, outcome in zip(chunk, response.json()["data"], strict=True):
                assert outcome["status"] in ("recorded", "replayed"), outcome
                view = outcome["result"]
                assert view["replayed"] == (outcome["status"] == "replayed")
                tally.answers[key].append(answer_of(view))
            tally.batches += 1
        for answer in (tally.answers[key][-1] for key in chunk):
            if answer.credit_balance < 0:
                tally.negative_balances.append(answer)
        if rng.random() < 0.5:
            check(http, tally, reference_id, units, rng)
    return tally


def check(
    http: httpx.Client, tally: Writer, reference_id: str, units: int, rng: random.Random
) -> None:
    """An entitlement check, or a pre-flight, for the same customer."""
    tally.requests += 1
    tally.checks += 1
    if rng.random() < 0.7:
        response = http.get(f"/entitlements/{reference_id}/ai_chat", params={"units": units})
        assert response.status_code == 200, response.text
        assert response.json()["data"]["isAllowed"] is True  # overage is billed past credits
        balance = response.json()["data"]["creditBalance"]
    else:
        response = http.post(
            "/entitlements",
            json={
                "customerReferenceId": reference_id,
                "featureKey": "ai_chat",
                "track": {"eventName": "chat.completion", "usageUnits": units},
            },
        )
        assert response.status_code == 200, response.text
        assert response.json()["data"]["isAllowed"] is True
        balance = 0
    if balance < 0:
        tally.negative_balances.append(response.json())


@pytest.fixture
def api_clients(server: str, api_key: str) -> Iterator[list[httpx.Client]]:
    """A client of its own per writer, as separate processes of the operator's product."""
    clients = [
        httpx.Client(
            base_url=f"{server}/api/v1/client",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=60,
        )
        for _ in range(WRITERS)
    ]
    yield clients
    for client in clients:
        client.close()


def test_16_writers_over_http_on_one_pool_record_each_event_once_and_never_overdraw(
    postgresql_only: None,
    synced: Flask,
    enterprise_customer: str,
    api_clients: list[httpx.Client],
    figures: Figures,
) -> None:
    per_writer = at_scale(100, 1_000)
    events = WRITERS * per_writer
    units = math.ceil(DEMAND * POOL / events)
    plans = [plan_of(number, per_writer, random.Random(number)) for number in range(WRITERS)]
    tallies: list[Writer] = []
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def writer(number: int) -> None:
        start.wait()
        try:
            tallies.append(
                write(
                    api_clients[number],
                    enterprise_customer,
                    plans[number],
                    units,
                    random.Random(1000 + number),
                )
            )
        except BaseException as exc:
            errors.append(exc)

    began = time.monotonic()
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - began
    assert errors == [], errors[0]

    answers: dict[str, list[Answer]] = defaultdict(list)
    for tally in tallies:
        for key, sent in tally.answers.items():
            answers[key] += sent
    sends = sum(len(sent) for sent in answers.values())
    # Every key answered once as recorded, and every other time with that same result.
    doubled = [key for key, sent in answers.items() if sum(not a.replayed for a in sent) != 1]
    disagreeing = [
        key for key, sent in answers.items() if len({(a.drawn, a.overage) for a in sent}) != 1
    ]
    firsts = [next(a for a in sent if not a.replayed) for sent in answers.values() if sent]
    drawn = sum(a.drawn for a in firsts)
    overage = sum(a.overage for a in firsts)

    with synced.app_context():
        customer_id = db.session.scalar(
            select(Customer.id).where(Customer.reference_id == enterprise_customer)
        )
        recorded = db.session.execute(
            select(
                func.count(),
                func.count(func.distinct(UsageEvent.idempotency_key)),
                func.sum(UsageEvent.units),
            ).where(UsageEvent.customer_id == customer_id)
        ).one()
        event_ids = set(
            db.session.scalars(select(UsageEvent.id).where(UsageEvent.customer_id == customer_id))
        )
        (pool,) = db.session.scalars(
            select(CreditPool).where(CreditPool.customer_id == customer_id)
        )
        entries = db.session.execute(
            select(
                CreditLedgerEntry.lot_id,
                CreditLedgerEntry.kind,
                CreditLedgerEntry.amount,
                CreditLedgerEntry.source,
            )
            .where(CreditLedgerEntry.pool_id == pool.id)
            .order_by(CreditLedgerEntry.id)
        ).all()
        lots = db.session.execute(
            select(CreditLot.id, CreditLot.remaining).where(CreditLot.pool_id == pool.id)
        ).all()
        counted = db.session.scalar(
            select(func.sum(UsageCounter.used)).where(UsageCounter.customer_id == customer_id)
        )
        billed = db.session.scalar(
            select(func.sum(OverageOutbox.units)).where(OverageOutbox.customer_id == customer_id)
        )
        balance = pool.balance
        db.session.rollback()

    ledger_sum = sum(entry.amount for entry in entries)
    grants = sum(entry.amount for entry in entries if entry.amount > 0)
    burns = -sum(entry.amount for entry in entries if entry.amount < 0)
    deducts = [entry for entry in entries if entry.kind == LedgerKind.DEDUCT]
    deducted_events = [int(entry.source.split(":")[1]) for entry in deducts]
    deducted_pairs = {(entry.source.split(":")[1], entry.lot_id) for entry in deducts}
    running, lowest = 0, 0
    for entry in entries:
        running += entry.amount
        lowest = min(lowest, running)
    lots_below_zero = [lot.id for lot in lots if lot.remaining < 0]
    lots_off_ledger = [
        lot.id
        for lot in lots
        if lot.remaining != sum(entry.amount for entry in entries if entry.lot_id == lot.id)
    ]

    figures.add("writers", WRITERS)
    figures.add("events (distinct keys)", len(answers))
    figures.add("events sent, with the neighbours' repeats", sends)
    figures.add(
        "requests: single events / batches / checks and pre-flights",
        f"{sum(t.singles for t in tallies):,} / {sum(t.batches for t in tallies):,} / "
        f"{sum(t.checks for t in tallies):,}",
    )
    figures.add("HTTP requests", sum(t.requests for t in tallies))
    figures.add("503 database_busy answers retried", sum(t.busy for t in tallies))
    figures.add(
        "repeats answered as replays", sum(a.replayed for sent in answers.values() for a in sent)
    )
    figures.add("events recorded (usage_events rows)", int(recorded[0]))
    figures.add("events recorded twice or answered differently", len(doubled) + len(disagreeing))
    figures.add("pool balance / ledger sum", f"{balance:,} / {ledger_sum:,}")
    figures.add("credits drawn / overage units", f"{drawn:,} / {overage:,}")
    figures.add("lowest running balance in the ledger", lowest)
    figures.add("events/s recorded", round(len(answers) / seconds))

    assert len(answers) == events
    assert doubled == [], doubled[:10]
    assert disagreeing == [], disagreeing[:10]
    assert all(t.negative_balances == [] for t in tallies)
    assert tuple(recorded) == (events, events, events * units)
    assert counted == events * units
    assert drawn + overage == events * units
    assert balance == ledger_sum == grants - burns
    assert grants == POOL
    assert drawn == burns == POOL - balance
    assert billed == overage
    assert lowest >= 0
    assert lots_below_zero == []
    assert lots_off_ledger == []
    # Each deduction is of a recorded event, once per lot.
    assert set(deducted_events) <= event_ids
    assert len(deducted_pairs) == len(deducts)
