"""Crash safety: the web process killed with SIGKILL in the middle of batches of usage and in the
middle of a webhook. After a restart nothing is half-written, and resending the batches and
redelivering the webhooks ends where a run without the crash ends.

The app runs as `flask run` in a process of its own (with its Stripe sandbox, whose background
thread delivers the webhooks), against a database and a sandbox file the test made; the test
reads both from outside. Each scenario runs twice, with the same customers and the same
requests: once without a crash, for reference, and once with the kills; the two are compared
row by row, keyed by what names each row outside its database (reference ids, idempotency
keys, grant sources).

What "nothing half-written" means is docs/api.md's promise: a batch is one transaction on
SQLite, all or nothing; on PostgreSQL it commits the events of the customers no other call
holds first, so part of it may be committed, but never part of one customer's events, and an
event never without its deductions and overage. Batches are killed twice: once while one waits
for a customer the test holds (on PostgreSQL the others' events are committed by then), and
once while four senders are at work and the server has a write open.

A webhook is killed "in the middle" with no hook in the app: the server's Stripe calls are made
slow (STRIPE_SANDBOX_LATENCY_MS), and the test watches the event log from outside. It kills once
while a handler reads Stripe (its event recorded, not processed), and once while a handler that
has mirrored Enterprise's new period sends that period's fee to Stripe as a meter event.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from flask import Flask
from sqlalchemy import insert, make_url, select

from app import create_app
from app.accounts.mirror import Subscription, SubscriptionStatus
from app.accounts.models import Customer
from app.api.keys import create_key
from app.catalog import current_catalog
from app.clock import now
from app.config import ENVIRONMENT_VARIABLES, REPO_ROOT
from app.entitlements.credits import Period, grant_plan_credits
from app.entitlements.models import (
    CreditLedgerEntry,
    CreditLot,
    CreditPool,
    OverageBatch,
    OverageOutbox,
    UsageAlert,
    UsageCounter,
    UsageEvent,
)
from app.extensions import db
from app.stripe_sandbox import Sandbox
from tests.apps import app_config
from tests.conftest import MigratedDatabase
from tests.entitlements.helpers import locked_by_another_writer
from tests.journeys import DAY, GOOD_CARD
from tests.processes import free_port
from tests.reliability.conftest import Figures, at_scale
from tests.reliability.lifecycles import (
    MIRROR,
    Snapshot,
    books_that_do_not_balance,
    differences,
    event_log,
    snapshot,
    stripe_customers,
    stripe_truth,
    summary,
)
from tests.waiting import wait_until

# The app as a process of its own, and the test's hands on its database and its sandbox.


@dataclass
class Server:
    """`flask run` on a database and a sandbox of the test's, started, killed and restarted."""

    workdir: Path
    database_url: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def sandbox_path(self) -> Path:
        return self.workdir / "stripe_sandbox.sqlite3"

    @property
    def instance_path(self) -> Path:
        return self.workdir / "instance"

    def start(self, latency_ms: int = 0) -> None:
        """Start the server (its Stripe calls ``latency_ms`` slow) and wait until it answers."""
        assert self.process is None
        environ = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT_VARIABLES}
        environ.update(
            FLASK_APP="wsgi",
            SECRET_KEY="crash-safety",
            DATABASE_URL=self.database_url,
            TOLLGATE_INSTANCE_PATH=str(self.instance_path),
            STRIPE_SANDBOX_PATH=str(self.sandbox_path),
            TOLLGATE_BASE_URL=self.base,
            STRIPE_SANDBOX_LATENCY_MS=str(latency_ms),
        )
        with open(self.workdir / "server.log", "ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
                [sys.executable, "-m", "flask", "run", "--port", str(self.port)],
                cwd=REPO_ROOT,
                env=environ,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, self.log_tail()
            try:
                if httpx.get(f"{self.base}/pricing", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, self.log_tail()
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no handler runs, no transaction is finished, nothing is flushed."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None

    def log_tail(self) -> str:
        path = self.workdir / "server.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


@contextmanager
def served(
    workdir: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Server, Flask]]:
    """A server (not yet started) and the test's own app on the same database, instance folder
    and sandbox, to seed, read and move the clock with; the catalog is in the sandbox."""
    workdir.mkdir(parents=True)
    server = Server(workdir, database_url)
    monkeypatch.setenv("TOLLGATE_INSTANCE_PATH", str(server.instance_path))
    control = create_app(
        app_config(
            database_url,
            TOLLGATE_BASE_URL=server.base,
            STRIPE_SANDBOX_PATH=str(server.sandbox_path),
            CHECK_CACHE=False,
        )
    )
    result = control.test_cli_runner().invoke(args=["catalog", "sync"])
    assert result.exit_code == 0, result.output
    try:
        yield server, control
    finally:
        server.stop()
        with control.app_context():
            db.engine.dispose()


def database_for(migrated_database: MigratedDatabase, workdir: Path) -> str:
    """A database with the schema and no rows: a copy of the template on SQLite; the run's
    database on PostgreSQL (cleaned after each run)."""
    workdir.mkdir(parents=True, exist_ok=True)
    return migrated_database.fresh_url(workdir)


def api_key(app: Flask) -> str:
    with app.app_context():
        _, key = create_key("crash-safety")
        db.session.commit()
    return key


class Probe:
    """The test's own connection to the server's database, to watch it from outside."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        self.sqlite = url.get_backend_name() == "sqlite"
        if self.sqlite:
            self.connection: Any = sqlite3.connect(
                str(url.database), timeout=0, isolation_level=None
            )
        else:
            self.connection = psycopg.connect(
                url.set(drivername="postgresql").render_as_string(False), autocommit=True
            )

    def scalar(self, sql: str) -> Any:
        return self.connection.execute(sql).fetchone()[0]

    def writer_open(self) -> bool:
        """Whether the server has a write transaction open right now."""
        if self.sqlite:
            try:
                self.connection.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                return True
            self.connection.execute("ROLLBACK")
            return False
        return bool(
            self.scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                " AND (state LIKE 'idle in transaction%'"
                "      OR (state = 'active' AND query NOT ILIKE 'listen%'))"
            )
        )

    def close(self) -> None:
        self.connection.close()


# Batches of usage.

EVENTS_PER_BATCH = 1_000
SENDERS = 4  # each with customers of its own, so each customer's events keep one order


@dataclass(frozen=True)
class Workload:
    """Who the customers are, their period, and each sender's batches in order."""

    customers: list[str]
    period: tuple[datetime, datetime]
    batches: list[list[list[dict[str, Any]]]]  # per sender

    @property
    def events(self) -> int:
        return sum(len(batch) for sender in self.batches for batch in sender)


def workload(customer_count: int, batches_per_sender: int) -> Workload:
    """Events of random customers of each sender: AI tokens (credits, then billable overage, up
    to a hard limit some reach) and API calls (included, then overage), with a few that are
    refused: a feature that is not metered, a customer nobody knows."""
    customers = [f"crash-{n}" for n in range(customer_count)]
    rng = random.Random(19)
    batches = []
    for sender in range(SENDERS):
        own = customers[sender::SENDERS]
        batches.append(
            [
                [
                    event(rng, rng.choice(own), f"s{sender}-b{b}-e{n}")
                    for n in range(EVENTS_PER_BATCH)
                ]
                for b in range(batches_per_sender)
            ]
        )
    start = datetime.fromtimestamp(int(time.time()) - DAY, tz=UTC)
    return Workload(customers, (start, start + timedelta(days=30)), batches)


def event(rng: random.Random, customer: str, key: str) -> dict[str, Any]:
    roll = rng.random()
    feature, units = ("ai_chat", rng.randint(1, 80_000))
    if roll < 0.49:
        feature, units = ("api_calls", rng.randint(1, 5_000))
    elif roll < 0.5:
        feature, units = ("sso", 1)  # not metered: refused
    elif roll < 0.505:
        customer = "nobody"  # unknown: refused
    return {
        "eventIdempotencyKey": key,
        "eventName": f"{feature}.used",
        "customerReferenceId": customer,
        "featureKey": feature,
        "usageUnits": units,
    }


def seed(app: Flask, load: Workload) -> None:
    """The customers, each on an active Pro subscription (written as the sync path would leave
    it) with its period's credits granted, as bench/run.py seeds them."""
    start, end = load.period
    with app.app_context():
        stamp = now()
        db.session.execute(
            insert(Customer),
            [
                {"reference_id": ref, "email": f"{ref}@example.com", "created_at": stamp}
                for ref in load.customers
            ],
        )
        ids = dict(db.session.execute(select(Customer.reference_id, Customer.id)).all())
        db.session.execute(
            insert(Subscription),
            [
                {
                    "stripe_subscription_id": f"sub_{ref}",
                    "customer_id": ids[ref],
                    "plan_key": "pro_monthly",
                    "stripe_price_id": "price_crash",
                    "status": SubscriptionStatus.ACTIVE,
                    "current_period_start": start,
                    "current_period_end": end,
                    "cancel_at_period_end": False,
                    "stripe_created": start,
                    "created_at": stamp,
                    "updated_at": stamp,
                }
                for ref in load.customers
            ],
        )
        db.session.commit()
        plan = current_catalog().plan("pro_monthly")
        assert plan is not None
        for ref in load.customers:
            grant_plan_credits(ids[ref], plan, Period(f"sub_{ref}", start, end))
            db.session.commit()


def answer_of(outcome: dict[str, Any]) -> Any:
    """What a batch answered for one event, but whether it was a replay."""
    if outcome["status"] == "rejected":
        return ("rejected", outcome["error"]["code"])
    return ("recorded", {k: v for k, v in outcome["result"].items() if k != "replayed"})


@dataclass
class Sender:
    """Sends one sender's batches in order; stops at the first that gets no answer."""

    base: str
    key: str
    batches: list[list[dict[str, Any]]]
    answers: dict[str, Any] = field(default_factory=dict)
    next_batch: int = 0
    busy: int = 0

    def run(self) -> None:
        with httpx.Client(
            base_url=f"{self.base}/api/v1/client",
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=60,
        ) as http:
            while self.next_batch < len(self.batches):
                batch = self.batches[self.next_batch]
                try:
                    response = http.post("/events/batch", json={"events": batch})
                except httpx.TransportError:
                    return  # killed: this batch is sent again, whole, after the restart
                if response.status_code == 503:
                    self.busy += 1
                    time.sleep(float(response.headers.get("Retry-After", "1")))
                    continue
                assert response.status_code == 200, response.text
                for sent, outcome in zip(batch, response.json()["data"], strict=True):
                    self.answers[sent["eventIdempotencyKey"]] = answer_of(outcome)
                self.next_batch += 1


def run_senders(senders: list[Sender], until: Callable[[], bool] | None = None) -> None:
    """Run the senders at once; with ``until``, only until it returns True (it may kill)."""
    threads = [threading.Thread(target=sender.run) for sender in senders]
    for thread in threads:
        thread.start()
    if until is not None:
        while any(thread.is_alive() for thread in threads) and not until():
            time.sleep(0.002)
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive()


def usage_state(app: Flask) -> Snapshot:
    """Usage and credits, keyed by reference ids, idempotency keys and grant sources."""
    with app.app_context():
        reference = dict(db.session.execute(select(Customer.id, Customer.reference_id)).all())
        events = {e.id: e for e in db.session.scalars(select(UsageEvent))}
        pools = {p.id: p for p in db.session.scalars(select(CreditPool))}
        lots = {lot.id: lot for lot in db.session.scalars(select(CreditLot))}

        def ledger_key(entry: CreditLedgerEntry) -> tuple[Any, ...]:
            pool, lot = pools[entry.pool_id], lots.get(entry.lot_id or 0)
            source = entry.source
            if source.startswith("usage:"):
                _, event_id, _lot = source.split(":")
                source = f"usage:{events[int(event_id)].idempotency_key}"
            elif lot is not None and source.endswith(f":{lot.id}"):
                source = source[: -len(str(lot.id))] + "<lot>"
            return (reference[pool.customer_id], pool.key, lot.source if lot else None, source)

        taken: Snapshot = {
            "usage_events": {
                (reference[e.customer_id], e.idempotency_key): {
                    "event_name": e.event_name,
                    "feature_key": e.feature_key,
                    "units": e.units,
                    "period_key": e.period_key,
                    "result": e.result,
                }
                for e in events.values()
            },
            "usage_counters": {
                (reference[c.customer_id], c.feature_key, c.period_key): {"used": c.used}
                for c in db.session.scalars(select(UsageCounter))
            },
            "overage_outbox": {
                (reference[o.customer_id], events[o.usage_event_id].idempotency_key): {
                    "event_name": o.event_name,
                    "period_key": o.period_key,
                    "units": o.units,
                }
                for o in db.session.scalars(select(OverageOutbox))
            },
            "usage_alerts": {
                (reference[a.customer_id], a.period_key, str(a.subject), a.key, a.threshold): {
                    "used": a.used,
                    "of": a.of,
                }
                for a in db.session.scalars(select(UsageAlert))
            },
            "credit_pools": {
                (reference[p.customer_id], p.key): {"balance": p.balance} for p in pools.values()
            },
            "credit_lots": {
                (reference[pools[lot.pool_id].customer_id], pools[lot.pool_id].key, lot.source): {
                    "amount": lot.amount,
                    "remaining": lot.remaining,
                }
                for lot in lots.values()
            },
            "credit_ledger": {
                ledger_key(entry): {"kind": str(entry.kind), "amount": entry.amount}
                for entry in db.session.scalars(select(CreditLedgerEntry))
            },
        }
        db.session.rollback()
    return taken


USAGE_TABLES = (
    "usage_events",
    "usage_counters",
    "overage_outbox",
    "usage_alerts",
    "credit_pools",
    "credit_lots",
    "credit_ledger",
)


def half_written(
    state: Snapshot, load: Workload, expected: Snapshot, postgresql: bool
) -> list[str]:
    """What breaks a batch's promise after a kill: an event recorded with another result than
    the run without the crash gave it; on SQLite a batch recorded in part; on PostgreSQL one
    customer's events of a batch recorded in part; an event without its deductions or billable
    overage, or those of an event not recorded; counters that are not the sum of the recorded
    events."""
    found = []
    recorded = state["usage_events"]
    for (reference_id, key), row in recorded.items():
        if expected["usage_events"].get((reference_id, key)) != row:
            found.append(f"{key}: recorded as {row}, not as without the crash")
    for sender in load.batches:
        for number, batch in enumerate(sender):
            parts: dict[str, Counter[bool]] = defaultdict(Counter)
            for sent in batch:
                name = (sent["customerReferenceId"], sent["eventIdempotencyKey"])
                if name in expected["usage_events"]:
                    whose = "batch" if not postgresql else sent["customerReferenceId"]
                    parts[whose][name in recorded] += 1
            for whose, seen in parts.items():
                if len(seen) > 1:
                    found.append(f"batch {number} of {whose}: {dict(seen)} recorded / not")
    # An event's deductions and billable overage are written with it, or not at all.
    events_of: dict[str, Callable[[Any], str | None]] = {
        "overage_outbox": lambda name: name[1],
        "credit_ledger": lambda name: name[3][6:] if name[3].startswith("usage:") else None,
    }
    written = {key for _, key in recorded}
    for table, event_of in events_of.items():
        for name in expected[table].keys() | state[table].keys():
            key = event_of(name)
            if key is not None:
                wanted = expected[table].get(name) if key in written else None
                if state[table].get(name) != wanted:
                    found.append(f"{table} {name}: {state[table].get(name)}, not {wanted}")
    sums: Counter[tuple[str, str, str]] = Counter()
    for (reference_id, _), row in recorded.items():
        sums[reference_id, row["feature_key"], row["period_key"]] += row["units"]
    counters = {key: row["used"] for key, row in state["usage_counters"].items()}
    if counters != {key: used for key, used in sums.items() if used}:
        found.append("usage counters are not the sums of the recorded events")
    return found


def partly_committed(state: Snapshot, load: Workload, expected: Snapshot) -> int:
    """Batches of which some recordable events are recorded and others not."""
    count = 0
    for sender in load.batches:
        for batch in sender:
            seen = {
                (sent["customerReferenceId"], sent["eventIdempotencyKey"]) in state["usage_events"]
                for sent in batch
                if (sent["customerReferenceId"], sent["eventIdempotencyKey"])
                in expected["usage_events"]
            }
            count += len(seen) > 1
    return count


def test_batches_killed_mid_write_leave_nothing_half_written_and_resending_converges(
    migrated_database: MigratedDatabase,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    figures: Figures,
) -> None:
    started = time.monotonic()
    postgresql = migrated_database.backend == "postgresql"
    load = workload(at_scale(40, 120), at_scale(3, 10))

    # Without a crash, for reference.
    url = database_for(migrated_database, tmp_path / "reference-db")
    with served(tmp_path / "reference", url, monkeypatch) as (server, control):
        seed(control, load)
        key = api_key(control)
        server.start()
        senders = [Sender(server.base, key, batches) for batches in load.batches]
        run_senders(senders)
        expected = usage_state(control)
        expected_answers = {k: v for sender in senders for k, v in sender.answers.items()}
        server.stop()
        migrated_database.clean(control)
    assert len(expected_answers) == load.events
    assert books_that_do_not_balance_in(expected) == []

    url = database_for(migrated_database, tmp_path / "crash-db")
    with served(tmp_path / "crash", url, monkeypatch) as (server, control):
        seed(control, load)
        key = api_key(control)
        probe = Probe(url)
        try:
            server.start()
            senders = [Sender(server.base, key, batches) for batches in load.batches]

            # Kill 1: a batch waiting for a customer another writer holds (its last).
            first = load.batches[0][0]
            held = max(
                {sent["customerReferenceId"] for sent in first} - {"nobody"},
                key=lambda ref: int(ref.split("-")[1]),
            )
            waiting_for = {
                (ref, k)
                for ref, k in expected["usage_events"]
                if k.startswith("s0-b0-") and ref == held
            }
            committed_first = {
                name for name in expected["usage_events"] if name[1].startswith("s0-b0-")
            } - waiting_for
            with locked_by_another_writer(url, held):
                sending = threading.Thread(target=senders[0].run)
                sending.start()
                if postgresql:
                    # The customers no one holds are committed while it waits for the other.
                    wait_until(
                        lambda: (
                            probe.scalar("SELECT count(*) FROM usage_events")
                            == len(committed_first)
                        ),
                        timeout=4,
                    )
                else:
                    time.sleep(0.5)  # waiting for the database, well inside its 5 s
                assert sending.is_alive()
                server.kill()
            sending.join(timeout=30)
            after_first_kill = usage_state(control)
            recorded_at_first_kill = set(after_first_kill["usage_events"])
            assert recorded_at_first_kill == (committed_first if postgresql else set())
            assert half_written(after_first_kill, load, expected, postgresql) == []
            assert books_that_do_not_balance(control) == []

            # Kill 2: every sender at work, killed while the server has a write open.
            server.start()
            total = len(expected["usage_events"])
            landed: list[bool] = []

            def kill_midway() -> bool:
                if probe.scalar("SELECT count(*) FROM usage_events") < total * 0.4:
                    return False
                if not probe.writer_open():
                    return False
                server.kill()
                landed.append(True)
                return True

            run_senders(senders, until=kill_midway)
            assert landed, "the senders finished before the kill"
            after_second_kill = usage_state(control)
            broken = half_written(after_second_kill, load, expected, postgresql)
            partial = partly_committed(after_second_kill, load, expected)
            assert books_that_do_not_balance(control) == []

            # Restart; each sender sends its unanswered batches again, the first of them whole.
            server.start()
            resent = sum(len(s.batches) - s.next_batch for s in senders)
            run_senders(senders)
            actual = usage_state(control)
            answers = {k: v for sender in senders for k, v in sender.answers.items()}
        finally:
            probe.close()
            server.stop()
            migrated_database.clean(control)

    differ = differences(expected, actual, USAGE_TABLES)
    answers_differ = [k for k, v in expected_answers.items() if answers.get(k) != v]
    figures.add("customers / senders", f"{len(load.customers)} / {SENDERS}")
    figures.add("batches of 1,000 events", sum(len(sender) for sender in load.batches))
    figures.add("events (recorded / refused)", f"{total:,} / {load.events - total:,}")
    figures.add(
        "kill 1, batch waiting for a held customer: events committed", len(recorded_at_first_kill)
    )
    figures.add("kill 2, mid-write: events committed", len(after_second_kill["usage_events"]))
    figures.add("kill 2: batches found partly committed", partial)
    figures.add("kill 2: rows half-written", len(broken))
    figures.add("batches sent again after the restart", resent)
    figures.add("503 database_busy answers retried", sum(s.busy for s in senders))
    figures.add("rows that differ from the run without the crash", len(differ))
    figures.add("answers that differ from the run without the crash", len(answers_differ))
    figures.add("seconds", round(time.monotonic() - started, 1))

    assert broken == [], broken[:10]
    if not postgresql:
        assert partial == 0
    assert differ == [], summary(differ)
    assert answers_differ == [], answers_differ[:10]
    assert books_that_do_not_balance_in(actual) == []


def books_that_do_not_balance_in(state: Snapshot) -> list[str]:
    """The ledger's rules on a usage snapshot: each pool and lot the sum of its entries."""
    by_pool: Counter[Any] = Counter()
    by_lot: Counter[Any] = Counter()
    for (reference_id, pool, lot_source, _), row in state["credit_ledger"].items():
        by_pool[reference_id, pool] += row["amount"]
        by_lot[reference_id, pool, lot_source] += row["amount"]
    broken = [
        f"pool {key}: {row['balance']} against {by_pool[key]}"
        for key, row in state["credit_pools"].items()
        if row["balance"] != by_pool[key]
    ]
    broken += [
        f"lot {key}: {row['remaining']} against {by_lot[key]}"
        for key, row in state["credit_lots"].items()
        if row["remaining"] != by_lot[key] or row["remaining"] < 0
    ]
    return broken


# Webhooks.

WEBHOOK_LATENCY_MS = 250  # each Stripe call of the server's, while a webhook is killed


def subscribe_over_the_api(server: Server, key: str, count: int) -> None:
    """``count`` customers on Pro through the API and Checkout (a trial with a card), and one on
    Enterprise (in arrears: active at once)."""
    with (
        httpx.Client(
            base_url=f"{server.base}/api/v1/client",
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        ) as api,
        httpx.Client(timeout=60) as browser,
    ):
        for n in range(count):
            ref = f"hook-{n}"
            assert (
                api.post(
                    "/customers", json={"customerReferenceId": ref, "email": f"{ref}@example.com"}
                ).status_code
                == 201
            )
            started = api.post(
                "/subscriptions", json={"customerReferenceId": ref, "planId": "pro_monthly"}
            )
            assert started.status_code == 200, started.text
            paid = browser.post(
                started.json()["data"]["checkoutUrl"],
                data={"email": "", "card_number": GOOD_CARD, "expiry": "12 / 34", "cvc": "123"},
            )
            assert paid.status_code == 303, paid.text
            assert browser.get(paid.headers["location"]).status_code == 200
        assert (
            api.post(
                "/customers", json={"customerReferenceId": "hook-ent", "email": "ent@example.com"}
            ).status_code
            == 201
        )
        assert (
            api.post(
                "/subscriptions",
                json={"customerReferenceId": "hook-ent", "planId": "enterprise_monthly"},
            ).status_code
            == 201
        )


def delivered(control: Flask, probe: Probe) -> bool:
    """Every webhook delivered, and every event recorded is processed."""
    sandbox: Sandbox = control.extensions["stripe_sandbox"]
    return not sandbox.pending_deliveries() and not probe.scalar(
        "SELECT count(*) FROM stripe_events WHERE processed_at IS NULL"
    )


def meter_events(control: Flask, customers: dict[str, str]) -> Snapshot:
    """The meter events Tollgate queued and sent (an in-arrears plan's fee, overage), and those
    Stripe counted (a repeated identifier is not counted), per customer reference id."""
    with control.app_context():
        reference = dict(db.session.execute(select(Customer.id, Customer.reference_id)).all())
        queued: dict[str, list[Any]] = defaultdict(list)
        for batch in db.session.scalars(select(OverageBatch)):
            queued[reference[batch.customer_id]].append(
                (batch.event_name, batch.units, batch.forwarded_at is not None)
            )
        db.session.rollback()
    sandbox: Sandbox = control.extensions["stripe_sandbox"]
    counted: dict[str, list[Any]] = defaultdict(list)
    for sent in sandbox.run(lambda ctx: ctx.store.all("billing.meter_event")):
        if not sent["_duplicate"]:
            customer = sent["payload"]["stripe_customer_id"]
            counted[customers[customer]].append((sent["event_name"], sent["payload"]["value"]))
    return {
        "meter_events_queued": {ref: {"rows": sorted(rows)} for ref, rows in queued.items()},
        "meter_events_counted": {ref: {"rows": sorted(rows)} for ref, rows in counted.items()},
    }


def by_customer(taken: Snapshot) -> Snapshot:
    """The mirror and credits per customer reference id, without Stripe's ids and times: what
    two runs against two sandboxes can agree on."""
    grouped: dict[str, dict[Any, list[Any]]] = {
        table: defaultdict(list) for table in ("subscriptions", "invoices", "lots", "ledger")
    }
    for row in taken["subscriptions"].values():
        grouped["subscriptions"][row["customer"]].append(
            (row["plan_key"], row["status"], row["cancel_at_period_end"], row["scheduled_plan_key"])
        )
    for row in taken["invoices"].values():
        grouped["invoices"][row["customer"]].append(
            (row["billing_reason"], row["status"], row["amount_due"], row["amount_paid"])
        )
    for (ref, pool, source), row in taken["credit_lots"].items():
        grouped["lots"][ref].append(
            (pool, source.split(":")[0], row["plan_key"], row["amount"], row["remaining"])
        )
    for (ref, pool, lot_source, source), row in taken["credit_ledger"].items():
        grouped["ledger"][ref].append(
            (
                pool,
                (lot_source or "").split(":")[0],
                source.split(":")[0],
                row["kind"],
                row["amount"],
            )
        )
    normalized: Snapshot = {
        table: {ref: {"rows": sorted(found)} for ref, found in rows.items()}
        for table, rows in grouped.items()
    }
    normalized["credit_pools"] = dict(taken["credit_pools"])
    normalized["meter_events_queued"] = taken["meter_events_queued"]
    normalized["meter_events_counted"] = taken["meter_events_counted"]
    normalized["stripe_events"] = {
        kind: {"count": n}
        for kind, n in Counter(
            (row["type"], row["processed"], row["last_error"])
            for row in taken["stripe_events"].values()
        ).items()
    }
    return normalized


IN_FLIGHT = (
    "SELECT count(*) FILTER (WHERE processed_at IS NOT NULL),"
    " count(*) FILTER (WHERE processed_at IS NULL) FROM stripe_events"
)
FEE_UNSENT = "SELECT count(*) FROM overage_batches WHERE forwarded_at IS NULL"


def webhook_run(
    server: Server, control: Flask, count: int, kill: bool, figures: Figures | None
) -> tuple[Snapshot, Snapshot]:
    """Customers subscribe; the clock moves 32 days with the server stopped (Pro's trials end
    and are paid, Enterprise's first period ends and its invoice fails, without a card); the
    server starts again and delivers what that made. Its rows, and Stripe's, once every webhook
    is delivered.

    With ``kill``, the server's Stripe calls are slow while it delivers, and it is killed
    twice: while a webhook reads Stripe, its event recorded and not processed; then while a
    webhook that has mirrored Enterprise's new period (its credits granted, its fee queued as
    a meter event) sends that meter event to Stripe.
    """
    key = api_key(control)
    probe = Probe(server.database_url)
    sandbox: Sandbox = control.extensions["stripe_sandbox"]
    try:
        server.start()
        subscribe_over_the_api(server, key, count)
        wait_until(lambda: delivered(control, probe), timeout=60)
        server.stop()
        sandbox.advance(32 * DAY)
        before = probe.scalar("SELECT count(*) FROM stripe_events")
        if kill:

            def kill_in_the_middle(name: str, ready: Callable[[int], bool]) -> int:
                """Start slow, kill once an event is in flight and ``ready(processed)``."""
                server.start(latency_ms=WEBHOOK_LATENCY_MS)

                def in_the_middle() -> bool:
                    processed, in_flight = probe.connection.execute(IN_FLIGHT).fetchone()
                    return bool(in_flight) and ready(processed)

                wait_until(in_the_middle, 60, f"no webhook was {name} within a minute")
                server.kill()
                processed, in_flight = probe.connection.execute(IN_FLIGHT).fetchone()
                unsent = probe.scalar(FEE_UNSENT)
                assert in_flight > 0
                # Nothing half-written: what a sync wrote is whole, the ledger balances.
                assert books_that_do_not_balance(control) == []
                if figures is not None:
                    figures.add(
                        f"kill while {name}: events processed / in flight / undelivered",
                        f"{processed - before} / {in_flight} / {len(sandbox.pending_deliveries())}",
                    )
                    figures.add(f"kill while {name}: fees queued, unsent", unsent)
                return int(processed)

            first = kill_in_the_middle("reading Stripe", lambda processed: processed >= before + 3)
            # Past the first kill's event, Enterprise's new period mirrored, its fee unsent.
            kill_in_the_middle(
                "sending the fee",
                lambda processed: processed > first + 1 and probe.scalar(FEE_UNSENT) > 0,
            )
        server.start()
        wait_until(lambda: delivered(control, probe), timeout=120)
        taken = snapshot(control)
        customers = stripe_customers(control)
        taken.update(meter_events(control, customers))
        truth = stripe_truth(server.base, customers, sandbox.now())
        log = event_log(server.base)
    finally:
        probe.close()
    logged = {json.loads(body)["id"] for body in log}
    assert set(taken["stripe_events"]) == logged
    return taken, truth


def test_a_webhook_killed_midway_is_redelivered_and_ends_as_without_the_crash(
    migrated_database: MigratedDatabase,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    figures: Figures,
) -> None:
    started = time.monotonic()
    count = at_scale(3, 12)

    url = database_for(migrated_database, tmp_path / "reference-db")
    with served(tmp_path / "reference", url, monkeypatch) as (server, control):
        try:
            expected, _ = webhook_run(server, control, count, kill=False, figures=None)
        finally:
            server.stop()
            migrated_database.clean(control)

    url = database_for(migrated_database, tmp_path / "crash-db")
    with served(tmp_path / "crash", url, monkeypatch) as (server, control):
        try:
            actual, truth = webhook_run(server, control, count, kill=True, figures=figures)
            unbalanced = books_that_do_not_balance(control)
        finally:
            server.stop()
            migrated_database.clean(control)

    differ = differences(by_customer(expected), by_customer(actual), list(by_customer(actual)))
    from_stripe = differences(truth, actual, MIRROR)
    figures.add("customers", count + 1)
    figures.add("events in Stripe's log", len(actual["stripe_events"]))
    figures.add("rows that differ from the run without the crash", len(differ))
    figures.add("rows that differ from Stripe", len(from_stripe))
    figures.add("seconds", round(time.monotonic() - started, 1))

    assert all(
        row["processed"] and row["last_error"] is None for row in actual["stripe_events"].values()
    )
    assert differ == [], summary(differ)
    assert from_stripe == [], summary(from_stripe)
    assert unbalanced == [], unbalanced
