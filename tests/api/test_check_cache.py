"""Checks answered from memory: what a caller sees must not change for it.

"Another worker" here is a second application on the same database, as a second gunicorn
worker is: its writes reach the served app only through the database (PostgreSQL's
notifications, SQLite's data version).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from flask import Flask
from sqlalchemy import select

from app import create_app
from app.accounts.mirror import Subscription, SubscriptionStatus
from app.accounts.models import Customer
from app.clock import now
from app.entitlements.credits import grant_credits
from app.entitlements.fastpath import memory, postgres_cache
from app.entitlements.fastpath.memory import EXTENSION, CheckMemory
from app.entitlements.fastpath.postgres_cache import CheckCache
from app.entitlements.fastpath.sqlite_cache import SqliteCheckCache
from app.entitlements.models import LotOrigin
from app.extensions import db
from app.stripe_sandbox import Sandbox
from tests.apps import app_config
from tests.databases import change_from_outside, cut_connections
from tests.entitlements.helpers import record, run_at_once
from tests.waiting import wait_until


@pytest.fixture
def cache(app: Flask) -> CheckMemory:
    """The served app's check cache."""
    cached: CheckMemory | None = app.extensions.get(EXTENSION)
    assert cached is not None
    return cached


@pytest.fixture
def other_worker(app: Flask, tmp_path: Path) -> Iterator[Flask]:
    """A second app on the served app's database, with no cache of its own running."""
    other = create_app(
        app_config(
            app.config["SQLALCHEMY_DATABASE_URI"],
            STRIPE_SANDBOX_PATH=str(tmp_path / "other_sandbox.sqlite3"),
            CHECK_CACHE=False,
        )
    )
    yield other
    with other.app_context():
        db.engine.dispose()


@pytest.fixture
def listening(cache: CheckMemory) -> CheckCache:
    """PostgreSQL's cache, for the tests of what it hears and keeps per customer."""
    if not isinstance(cache, CheckCache):
        pytest.skip("SQLite's cache drops everything at any commit: it has no listener")
    return cache


def _check(api: httpx.Client, reference: str, feature: str = "api_calls") -> dict:
    response = api.get(f"/entitlements/{reference}/{feature}")
    assert response.status_code == 200, response.text
    data: dict = response.json()["data"]
    return data


def _served_from_memory(cache: CheckMemory, call: Callable[[], dict]) -> dict:
    """``call``'s answer, asserting that the cache answered it (PostgreSQL's listener may still
    be connecting when a test starts)."""
    answers: list[dict] = []

    def from_memory() -> bool:
        hits = cache.hits
        answers.append(call())
        return cache.hits > hits

    wait_until(from_memory, failure="the check never came from memory")
    return answers[-1]


def _eventually(call: Callable[[], dict], done: Callable[[dict], bool]) -> dict:
    """``call``'s answer once ``done`` holds of it; fails after 5 s."""
    answers: list[dict] = []

    def arrived() -> bool:
        answers.append(call())
        return done(answers[-1])

    wait_until(arrived, failure="the check never showed the change")
    return answers[-1]


def _customer_id(app: Flask, reference: str) -> int:
    with app.app_context():
        return db.session.scalars(
            select(Customer.id).where(Customer.reference_id == reference)
        ).one()


def test_usage_recorded_through_the_api_shows_in_the_very_next_check(
    api: httpx.Client, cache: CheckMemory, enterprise_customer: str
) -> None:
    _served_from_memory(cache, lambda: _check(api, enterprise_customer))
    for n in range(1, 21):
        event = {
            "eventIdempotencyKey": f"call-{n}",
            "eventName": "api.call",
            "customerReferenceId": enterprise_customer,
            "featureKey": "api_calls",
            "usageUnits": 1,
        }
        assert api.post("/events", json=event).status_code == 201
        # No waiting: on the worker that recorded it, the next check counts it.
        assert _check(api, enterprise_customer)["usage"]["used"] == n
    assert (
        _served_from_memory(cache, lambda: _check(api, enterprise_customer))["usage"]["used"] == 20
    )


def test_checks_count_every_event_acknowledged_before_them_under_concurrent_use(
    api: httpx.Client, server: str, api_key: str, cache: CheckMemory, enterprise_customer: str
) -> None:
    # Four callers record and check at once on one worker: a check never counts fewer events
    # than had been acknowledged when it was sent, however busy the worker's threads are.
    _served_from_memory(cache, lambda: _check(api, enterprise_customer))
    acknowledged = 0
    lock = threading.Lock()
    shortfalls: list[tuple[int, int]] = []

    def caller(number: int) -> None:
        nonlocal acknowledged
        with httpx.Client(
            base_url=f"{server}/api/v1/client", headers={"Authorization": f"Bearer {api_key}"}
        ) as own:
            for n in range(25):
                event = {
                    "eventIdempotencyKey": f"caller-{number}-{n}",
                    "eventName": "api.call",
                    "customerReferenceId": enterprise_customer,
                    "featureKey": "api_calls",
                    "usageUnits": 1,
                }
                assert own.post("/events", json=event).status_code == 201
                with lock:
                    acknowledged += 1
                    floor = acknowledged
                used = _check(own, enterprise_customer)["usage"]["used"]
                if used < floor:
                    shortfalls.append((used, floor))

    run_at_once(caller, 4)
    assert shortfalls == []
    assert _check(api, enterprise_customer)["usage"]["used"] == 100


def test_a_write_on_another_worker_reaches_a_check_answered_from_memory(
    api: httpx.Client,
    app: Flask,
    cache: CheckMemory,
    enterprise_customer: str,
    other_worker: Flask,
) -> None:
    assert (
        _served_from_memory(cache, lambda: _check(api, enterprise_customer))["usage"]["used"] == 0
    )
    record(other_worker, _customer_id(app, enterprise_customer), "elsewhere", "api_calls", 7)
    seen = _eventually(lambda: _check(api, enterprise_customer), lambda d: d["usage"]["used"] == 7)
    assert seen["usage"]["used"] == 7

    # Another worker ends the subscription (as its webhook would): the next checks refuse.
    with other_worker.app_context():
        subscription = db.session.scalars(select(Subscription)).one()
        subscription.status = SubscriptionStatus.CANCELED
        db.session.commit()
    refused = _eventually(lambda: _check(api, enterprise_customer), lambda d: not d["isAllowed"])
    assert (refused["isAllowed"], refused["subscriptionStatus"]) == (False, "canceled")


def test_usage_recorded_for_one_customer_leaves_the_others_checks_in_memory(
    api: httpx.Client,
    app: Flask,
    listening: CheckCache,
    enterprise_customer: str,
    other_worker: Flask,
) -> None:
    api.post("/customers", json={"customerReferenceId": "busy-1", "email": "b@example.com"})
    api.post("/subscriptions", json={"customerReferenceId": "busy-1", "planId": "free"})
    _served_from_memory(listening, lambda: _check(api, enterprise_customer))
    _served_from_memory(listening, lambda: _check(api, "busy-1"))
    record(other_worker, _customer_id(app, "busy-1"), "busy", "api_calls", 9)
    seen = _eventually(lambda: _check(api, "busy-1"), lambda d: d["usage"]["used"] == 9)
    assert seen["usage"]["used"] == 9
    hits = listening.hits
    assert _check(api, enterprise_customer)["usage"]["used"] == 0
    assert listening.hits == hits + 1  # still in memory: only busy-1's entries went


def test_usage_recorded_on_another_worker_is_counted_by_the_checks_in_memory(
    api: httpx.Client,
    app: Flask,
    listening: CheckCache,
    enterprise_customer: str,
    other_worker: Flask,
) -> None:
    # The loop of a product that checks, serves and reports: a report must not send the next
    # check to the database, and that check must count it.
    assert (
        _served_from_memory(listening, lambda: _check(api, enterprise_customer))["usage"]["used"]
        == 0
    )
    customer_id = _customer_id(app, enterprise_customer)
    for units, total in ((9, 9), (4, 13)):
        record(other_worker, customer_id, f"elsewhere-{total}", "api_calls", units)
        calls = 0
        hits = listening.hits

        def check() -> dict:
            nonlocal calls
            calls += 1
            return _check(api, enterprise_customer)

        seen = _eventually(check, lambda d, total=total: d["usage"]["used"] == total)
        assert seen["usage"]["used"] == total
        assert listening.hits == hits + calls  # every one of them answered from memory


def test_a_batch_over_many_customers_is_counted_by_each_of_their_checks_in_memory(
    api: httpx.Client, listening: CheckCache
) -> None:
    customers = [f"many-{n}" for n in range(45)]  # more than one notification's worth
    for reference in customers:
        api.post("/customers", json={"customerReferenceId": reference, "email": "m@example.com"})
        api.post("/subscriptions", json={"customerReferenceId": reference, "planId": "free"})
        _served_from_memory(listening, lambda reference=reference: _check(api, reference))
    events = [
        {
            "eventIdempotencyKey": f"many-{n}",
            "eventName": "api.call",
            "customerReferenceId": reference,
            "featureKey": "api_calls",
            "usageUnits": n + 1,
        }
        for n, reference in enumerate(customers)
    ]
    response = api.post("/events/batch", json={"events": events})
    assert [row["status"] for row in response.json()["data"]] == ["recorded"] * len(customers)
    for n, reference in enumerate(customers):
        seen = _served_from_memory(listening, lambda reference=reference: _check(api, reference))
        assert seen["usage"]["used"] == n + 1


def test_usage_recorded_on_this_worker_holds_up_only_its_customers_checks(
    api: httpx.Client, app: Flask, listening: CheckCache, enterprise_customer: str
) -> None:
    api.post("/customers", json={"customerReferenceId": "quiet-1", "email": "q@example.com"})
    api.post("/subscriptions", json={"customerReferenceId": "quiet-1", "planId": "free"})
    _served_from_memory(listening, lambda: _check(api, enterprise_customer))
    _served_from_memory(listening, lambda: _check(api, "quiet-1"))
    # Hold the listener, so that this worker's commit is not heard back while the test looks.
    with listening._draining:
        recorded = api.post(
            "/events",
            json={
                "eventIdempotencyKey": "held",
                "eventName": "api.call",
                "customerReferenceId": enterprise_customer,
                "featureKey": "api_calls",
                "usageUnits": 5,
            },
        )
        assert recorded.status_code == 201, recorded.text
        hits = listening.hits
        assert _check(api, "quiet-1")["usage"]["used"] == 0
        assert listening.hits == hits + 1  # another customer's check: still from memory
        assert _check(api, enterprise_customer)["usage"]["used"] == 5  # its own: the database
        assert listening.hits == hits + 1
    _served_from_memory(listening, lambda: _check(api, enterprise_customer))


def test_a_change_made_outside_tollgate_reaches_a_check_answered_from_memory(
    api: httpx.Client, app: Flask, cache: CheckMemory, enterprise_customer: str
) -> None:
    # A psql session, say, correcting a counter by hand: the triggers tell every worker.
    _served_from_memory(cache, lambda: _check(api, enterprise_customer))
    record(app, _customer_id(app, enterprise_customer), "first", "api_calls", 3)
    assert _check(api, enterprise_customer)["usage"]["used"] == 3
    change_from_outside(
        app.config["SQLALCHEMY_DATABASE_URI"],
        "UPDATE usage_counters SET used = 40 WHERE feature_key = 'api_calls'",
    )
    seen = _eventually(lambda: _check(api, enterprise_customer), lambda d: d["usage"]["used"] == 40)
    assert seen["usage"]["used"] == 40


def test_a_revoked_key_is_refused_though_its_checks_were_answered_from_memory(
    api: httpx.Client, app: Flask, cache: CheckMemory, enterprise_customer: str
) -> None:
    _served_from_memory(cache, lambda: _check(api, enterprise_customer))
    event = {
        "customerReferenceId": enterprise_customer,
        "eventName": "api.call",
        "featureKey": "api_calls",
        "usageUnits": 1,
    }
    # The key was found good for other calls too (their one lookup is kept in memory as well).
    for n in range(2):
        accepted = api.post("/events", json={**event, "eventIdempotencyKey": f"before-{n}"})
        assert accepted.status_code == 201, accepted.text
    listed = app.test_cli_runner().invoke(args=["api-keys", "list"]).output
    key_id = next(line.split()[0] for line in listed.splitlines() if "tests" in line)
    result = app.test_cli_runner().invoke(args=["api-keys", "revoke", key_id])
    assert result.exit_code == 0, result.output
    response = api.get(f"/entitlements/{enterprise_customer}/api_calls")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    refused = api.post("/events", json={**event, "eventIdempotencyKey": "after"})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"


def test_credits_leave_a_check_answered_from_memory_when_they_expire(
    api: httpx.Client,
    app: Flask,
    cache: CheckMemory,
    enterprise_customer: str,
    sandbox: Sandbox,
) -> None:
    with app.app_context():
        grant_credits(
            _customer_id(app, enterprise_customer),
            pool_key="ai_tokens",
            denomination="tokens",
            amount=500,
            origin=LotOrigin.PROMOTIONAL,
            source="promo",
            expires_at=now() + timedelta(hours=1),
        )
        db.session.commit()
    before = _served_from_memory(cache, lambda: _check(api, enterprise_customer, "ai_chat"))
    sandbox.advance(2 * 3600)  # time passes; nothing is written
    after = _check(api, enterprise_customer, "ai_chat")
    assert after["creditBalance"] == before["creditBalance"] - 500


def test_checks_read_the_database_while_the_listener_is_cut_off(
    api: httpx.Client,
    app: Flask,
    listening: CheckCache,
    enterprise_customer: str,
    other_worker: Flask,
) -> None:
    _served_from_memory(listening, lambda: _check(api, enterprise_customer))
    listener = listening._connection
    assert listener is not None
    # This app's listener, and any that a finished test's app left stopping.
    assert cut_connections(app.config["SQLALCHEMY_DATABASE_URI"], "query LIKE 'LISTEN%'") >= 1
    # The worker notices at once (the connection's socket closes) and lets that connection go;
    # it may be listening on a new one by the time this looks, so not being live is no sign.
    wait_until(lambda: listening._connection is not listener, failure="the cut went unnoticed")
    # Whatever is written while no notification can arrive, the next checks see.
    record(other_worker, _customer_id(app, enterprise_customer), "while-cut", "api_calls", 5)
    for _ in range(20):
        assert _check(api, enterprise_customer)["usage"]["used"] == 5
    # The listener connects again, and checks come from memory once more.
    assert (
        _served_from_memory(listening, lambda: _check(api, enterprise_customer))["usage"]["used"]
        == 5
    )


def test_a_worker_that_stops_hearing_its_own_commits_stops_answering_from_memory(
    api: httpx.Client,
    listening: CheckCache,
    enterprise_customer: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As behind a pooler that drops LISTEN: the worker's connection stays up but hears nothing.
    _served_from_memory(listening, lambda: _check(api, enterprise_customer))
    with listening._draining:  # deafen the listener, as the pooler would
        assert listening._connection is not None
        listening._connection.execute("UNLISTEN *")
    event = {
        "eventIdempotencyKey": "unheard",
        "eventName": "api.call",
        "customerReferenceId": enterprise_customer,
        "featureKey": "api_calls",
        "usageUnits": 4,
    }
    assert api.post("/events", json=event).status_code == 201
    assert _check(api, enterprise_customer)["usage"]["used"] == 4  # its marker is due: the database
    # Time passes and the marker never comes: at the next check it is overdue.
    on_time = postgres_cache.MARKER_TIMEOUT_SECONDS
    monkeypatch.setattr(postgres_cache, "MARKER_TIMEOUT_SECONDS", 0.0)
    assert _check(api, enterprise_customer)["usage"]["used"] == 4  # overdue: it listens again
    monkeypatch.setattr(postgres_cache, "MARKER_TIMEOUT_SECONDS", on_time)
    assert not listening.live or len(listening) == 0
    assert (
        _served_from_memory(listening, lambda: _check(api, enterprise_customer))["usage"]["used"]
        == 4
    )


def test_the_memory_keeps_at_most_its_bound_and_drops_the_oldest_first(
    api: httpx.Client, cache: CheckMemory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory, "MAX_ENTRIES", 2)
    for reference in ("a-1", "a-2", "a-3"):
        api.post(
            "/customers",
            json={"customerReferenceId": reference, "email": f"{reference}@example.com"},
        )
        api.post("/subscriptions", json={"customerReferenceId": reference, "planId": "free"})
    _served_from_memory(cache, lambda: _check(api, "a-1"))
    _served_from_memory(cache, lambda: _check(api, "a-2"))
    _served_from_memory(cache, lambda: _check(api, "a-3"))
    assert len(cache) == 2
    hits = cache.hits
    assert _check(api, "a-1")["isAllowed"]  # the oldest went: read again
    assert cache.hits == hits


def test_sqlite_keeps_nothing_for_a_database_it_cannot_watch(tmp_path: Path) -> None:
    # A path that misses the database: watched, it would be a new empty file whose version
    # never moves, and checks would answer from memory forever.
    missing = tmp_path / "missing.sqlite3"
    cache = SqliteCheckCache(str(missing))
    assert cache.get(("key hash", "someone", "api_calls"), datetime.now(UTC)) is None
    assert cache.ticket() is None
    assert not missing.exists()
    # A database in memory is each connection's own: there is nothing to watch.
    in_memory = create_app(app_config("sqlite:///:memory:"))
    assert EXTENSION not in in_memory.extensions
