"""Two hosts on one PostgreSQL and one Redis: two gunicorn instances (two workers each) and two
`flask worker`s, driven by buyers and the operator's product through both, one worker SIGKILLed
in the middle. Afterwards every event is recorded once, every billable unit is counted once by
Stripe's meters, every webhook is processed, and each periodic slot ran once.

Both instances register their own webhook endpoint with the sandbox (they share its file, as
both hosts share Stripe), so Stripe sends every event to both: twice the deliveries, one apply.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from flask import Flask
from sqlalchemy import BigInteger, func, select

from app import create_app
from app.accounts.models import Customer
from app.api.keys import create_key
from app.entitlements.models import OverageBatch, OverageOutbox, UsageEvent
from app.extensions import db
from app.schedule import PeriodicRun
from app.webhooks.models import StripeEvent
from tests.apps import app_config
from tests.conftest import MigratedDatabase
from tests.journeys import subscribe
from tests.processes import Running, free_port, tollgate_environ, web, worker
from tests.reliability.conftest import Figures, at_scale
from tests.reliability.test_concurrency_at_scale import event
from tests.waiting import wait_until
from tests.web import WebClient

REDIS_URL = "redis://127.0.0.1:6379/0"
CUSTOMERS = 6


class Hosts:
    """Two instances and two workers on the test's database, queue and sandbox."""

    def __init__(self, workdir: Path, database_url: str) -> None:
        self.workdir = workdir
        self.ports = [free_port(), free_port()]
        queue_name = f"tollgate-test-{uuid.uuid4().hex[:8]}"
        self.environ = tollgate_environ(
            DATABASE_URL=database_url,
            SECRET_KEY="two-hosts",
            TOLLGATE_INSTANCE_PATH=str(workdir / "instance"),
            STRIPE_SANDBOX_PATH=str(workdir / "stripe_sandbox.sqlite3"),
            TOLLGATE_QUEUE_URL=REDIS_URL,
            TOLLGATE_QUEUE_NAME=queue_name,
            TOLLGATE_CHECK_CACHE="on",
            # A killed worker's claim on the batch it was sending lapses after twice its longest
            # send (claim_length): 40 s here, within the test's wait.
            STRIPE_WORKER_TIMEOUT_SECONDS="5",
        )
        self.queue_name = queue_name
        self.webs: list[Running] = []
        self.workers: list[Running] = []

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.ports[index]}"

    def start(self) -> None:
        for index, port in enumerate(self.ports):
            environ = {**self.environ, "TOLLGATE_BASE_URL": self.url(index)}
            self.webs.append(web(environ, port, self.workdir / f"web{index}.log"))
        for index in range(2):
            environ = {**self.environ, "TOLLGATE_BASE_URL": self.url(index)}
            self.workers.append(worker(environ, self.workdir / f"worker{index}.log"))

    def stop(self) -> None:
        for running in [*self.workers, *self.webs]:
            running.stop()
        keys = redis.Redis.from_url(REDIS_URL).keys(f"*{self.queue_name}*")
        if keys:
            redis.Redis.from_url(REDIS_URL).delete(*keys)

    def logs(self) -> str:
        return "\n".join(r.log_tail() for r in [*self.workers, *self.webs])


@pytest.fixture
def hosts(migrated_database: MigratedDatabase, tmp_path: Path) -> Iterator[tuple[Hosts, Flask]]:
    database_url = migrated_database.fresh_url(tmp_path)
    hosts = Hosts(tmp_path, database_url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TOLLGATE_INSTANCE_PATH", hosts.environ["TOLLGATE_INSTANCE_PATH"])
        control = create_app(
            app_config(
                database_url,
                STRIPE_SANDBOX_PATH=hosts.environ["STRIPE_SANDBOX_PATH"],
                TOLLGATE_BASE_URL=hosts.url(0),
            )
        )
    result = control.test_cli_runner().invoke(args=["catalog", "sync"])
    assert result.exit_code == 0, result.output
    try:
        hosts.start()
        yield hosts, control
    finally:
        hosts.stop()
        migrated_database.clean(control)


class Product(threading.Thread):
    """The operator's product on one host: check, then record; now and then a batch, and now
    and then the same event again (a retry after a timeout)."""

    def __init__(self, base: str, key: str, customers: list[str], seed: int, rounds: int) -> None:
        super().__init__()
        self.client = httpx.Client(
            base_url=f"{base}/api/v1/client", headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        self.rng, self.customers, self.rounds, self.seed = (
            random.Random(seed),
            customers,
            rounds,
            seed,
        )
        self.sent: dict[str, tuple[str, int]] = {}
        self.server_errors = 0

    def run(self) -> None:
        with self.client:
            for n in range(self.rounds):
                customer = self.rng.choice(self.customers)
                self._answer(self.client.get(f"/entitlements/{customer}/ai_chat"))
                if n % 10 == 9:
                    events = [self._new(customer, n, i) for i in range(20)]
                    self._answer(self.client.post("/events/batch", json={"events": events}))
                else:
                    event = self._new(customer, n, 0)
                    self._answer(self.client.post("/events", json=event))
                    if n % 4 == 0:
                        self._answer(self.client.post("/events", json=event))

    def _new(self, customer: str, n: int, i: int) -> dict[str, Any]:
        key = f"p{self.seed}-{n}-{i}"
        units = self.rng.randint(100_000, 900_000)
        self.sent[key] = (customer, units)
        return event(customer, key, units)

    def _answer(self, response: httpx.Response) -> None:
        if response.status_code >= 500:
            self.server_errors += 1


def _settled(control: Flask) -> bool:
    """Every overage unit batched and sent, every event recorded processed, nothing undelivered."""
    sandbox = control.extensions["stripe_sandbox"]
    with control.app_context():
        unbatched = db.session.scalar(select(func.count()).where(OverageOutbox.batch_id.is_(None)))
        unsent = db.session.scalar(select(func.count()).where(OverageBatch.forwarded_at.is_(None)))
        unprocessed = db.session.scalar(
            select(func.count()).where(StripeEvent.processed_at.is_(None))
        )
        db.session.rollback()
    return not (unbatched or unsent or unprocessed) and not sandbox.pending_deliveries()


def test_two_instances_two_workers_one_killed_nothing_lost_or_counted_twice(
    hosts: tuple[Hosts, Flask], figures: Figures, migrated_database: MigratedDatabase
) -> None:
    if migrated_database.backend == "sqlite":
        pytest.skip("several hosts share PostgreSQL; SQLite serves one machine")
    hosts_, control = hosts
    with control.app_context():
        _, key = create_key("two-hosts")
        db.session.commit()
    customers = [f"ent-{n}" for n in range(CUSTOMERS)]
    for n, customer in enumerate(customers):
        with httpx.Client(
            base_url=f"{hosts_.url(n % 2)}/api/v1/client",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        ) as api:
            api.post(
                "/customers", json={"customerReferenceId": customer, "email": f"{customer}@x.io"}
            )
            created = api.post(
                "/subscriptions",
                json={"customerReferenceId": customer, "planId": "enterprise_monthly"},
            )
            assert created.status_code == 201, created.text

    rounds = at_scale(60, 400)
    products = [Product(hosts_.url(n % 2), key, customers, seed=n, rounds=rounds) for n in range(4)]
    buyers = [f"buyer{n}@example.com" for n in range(at_scale(2, 8))]
    for product in products:
        product.start()
    for n, email in enumerate(buyers):
        with WebClient(base_url=hosts_.url(n % 2), follow_redirects=False, timeout=30) as client:
            subscribe(client, email, "pro_monthly")
        if n == 0:
            # A worker dies without a word, whatever it was doing; its supervisor starts another.
            hosts_.workers[0].kill()
            hosts_.workers[0].start()
    for product in products:
        product.join()

    # The surviving worker's schedule catches up within a minute or two.
    wait_until(lambda: _settled(control), 180, hosts_.logs())

    sent: dict[str, tuple[str, int]] = {}
    for product in products:
        sent.update(product.sent)
    sandbox = control.extensions["stripe_sandbox"]
    with control.app_context():
        recorded = db.session.execute(
            select(UsageEvent.idempotency_key, func.count()).group_by(UsageEvent.idempotency_key)
        ).all()
        overage = dict(
            db.session.execute(
                select(Customer.stripe_customer_id, func.sum(OverageOutbox.units).cast(BigInteger))
                .join(Customer, Customer.id == OverageOutbox.customer_id)
                .group_by(Customer.stripe_customer_id)
            ).all()
        )
        events = db.session.scalars(select(StripeEvent)).all()
        runs = db.session.scalars(select(PeriodicRun)).all()
        used = dict(
            db.session.execute(
                select(Customer.reference_id, func.count())
                .join(UsageEvent, UsageEvent.customer_id == Customer.id)
                .group_by(Customer.reference_id)
            ).all()
        )
    metered: Counter[str] = Counter()
    repeats = 0
    for meter_event in sandbox.store.all("billing.meter_event"):
        if meter_event["event_name"] != "tollgate_ai_chat":
            continue
        if meter_event.get("_duplicate"):
            repeats += 1
            continue
        metered[meter_event["payload"]["stripe_customer_id"]] += int(
            Decimal(meter_event["payload"]["value"])
        )
    subscribed = {
        kind
        for endpoint in sandbox.store.all("webhook_endpoint")
        for kind in endpoint["enabled_events"]
    }
    stripe_events = {
        event["id"] for event in sandbox.store.all("event") if event["type"] in subscribed
    }
    skipped = sum(log.count("is another run's; skipped") for log in _full_logs(hosts_))

    figures.add("usage events sent (distinct keys) / recorded", f"{len(sent)} / {len(recorded)}")
    figures.add("API answers 5xx", sum(p.server_errors for p in products))
    figures.add("overage units in the ledger", sum(overage.values()))
    figures.add("overage units counted by Stripe's meters", sum(metered.values()))
    figures.add("meter events sent again (same identifier, not counted)", repeats)
    figures.add("webhook events from Stripe / processed", f"{len(stripe_events)} / {len(events)}")
    figures.add(
        "periodic slots run / runs taken over / duplicates skipped",
        f"{len(runs)} / {sum(r.runs - 1 for r in runs)} / {skipped}",
    )

    assert sum(p.server_errors for p in products) == 0
    assert sorted(k for k, _ in recorded) == sorted(sent)
    assert all(count == 1 for _, count in recorded)
    assert sum(used.values()) == len(sent)
    assert overage
    assert metered == Counter(overage)
    assert {event.event_id for event in events} == stripe_events
    assert all(event.processed_at is not None for event in events)
    assert runs
    unfinished = [(run.job, run.slot, run.last_error) for run in runs if run.finished_at is None]
    assert not unfinished
    assert Counter((run.job, run.slot) for run in runs).most_common(1)[0][1] == 1
    assert skipped >= 1, "both workers' schedulers enqueue every slot; one of each skips"


def _full_logs(hosts: Hosts) -> list[str]:
    return [path.read_text(errors="replace") for path in hosts.workdir.glob("worker*.log")]


def test_same_key_sent_to_both_instances_at_once_is_answered_as_new_once(
    hosts: tuple[Hosts, Flask], figures: Figures
) -> None:
    hosts_, control = hosts
    with control.app_context():
        _, key = create_key("two-hosts")
        db.session.commit()
    clients = [
        httpx.Client(
            base_url=f"{hosts_.url(n)}/api/v1/client",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        for n in range(2)
    ]
    clients[0].post("/customers", json={"customerReferenceId": "ent-0", "email": "e@x.io"})
    created = clients[1].post(
        "/subscriptions", json={"customerReferenceId": "ent-0", "planId": "enterprise_monthly"}
    )
    assert created.status_code == 201, created.text
    keys = at_scale(80, 400)
    answers: dict[int, list[tuple[int, bool]]] = {n: [] for n in range(keys)}

    def send(side: int, barrier: threading.Barrier, n: int) -> None:
        body = event("ent-0", f"twice-{n}", 1_000)
        barrier.wait()
        if side == 1 and n % 2:
            # Every other key: a batch of one on the second instance, against a single event.
            batch = clients[side].post("/events/batch", json={"events": [body]})
            answers[n].append((201, batch.json()["data"][0]["result"]["replayed"]))
            return
        response = clients[side].post("/events", json=body)
        answers[n].append((response.status_code, response.json()["data"]["replayed"]))

    for n in range(keys):
        barrier = threading.Barrier(2)
        pair = [threading.Thread(target=send, args=(side, barrier, n)) for side in range(2)]
        for thread in pair:
            thread.start()
        for thread in pair:
            thread.join()
    for client in clients:
        client.close()

    new_twice = [n for n, pair in answers.items() if [r for _, r in pair].count(False) != 1]
    figures.add("keys sent to both instances at once", keys)
    figures.add("keys answered as new more than once (or never)", len(new_twice))
    assert new_twice == []
    assert all(
        sorted(s for s, _ in pair) == [200, 201] for n, pair in answers.items() if n % 2 == 0
    )
    with control.app_context():
        assert db.session.scalar(select(func.count()).select_from(UsageEvent)) == keys
