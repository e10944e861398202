"""Several processes at once, as an operator runs Tollgate: the sandbox's clock moved from one
process while a multi-worker server serves and delivers, forwarders on several hosts over the
same overage, and a sandbox whose meter events pile up. Each on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from app import create_app
from app.accounts.models import utcnow
from app.billing.overage_forwarding import claim_length, forward_overage
from app.entitlements.models import OverageBatch
from app.extensions import db
from app.stripe_sandbox import Sandbox
from tests.apps import app_config
from tests.conftest import MigratedDatabase
from tests.entitlements.helpers import record
from tests.factories import new_subscriber
from tests.processes import Running, free_port, tollgate_environ, web
from tests.reliability.conftest import Figures, at_scale
from tests.test_configurations import flask
from tests.waiting import wait_until

HOUR = 3600


class Host:
    """A database, a sandbox and an instance folder, with the test's own app over them and the
    environment for the processes that share them."""

    def __init__(self, workdir: Path, database_url: str, port: int) -> None:
        self.port = port
        self.environ = tollgate_environ(
            DATABASE_URL=database_url,
            SECRET_KEY="several-processes",
            TOLLGATE_INSTANCE_PATH=str(workdir / "instance"),
            STRIPE_SANDBOX_PATH=str(workdir / "stripe_sandbox.sqlite3"),
            TOLLGATE_BASE_URL=f"http://127.0.0.1:{port}",
        )
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("TOLLGATE_INSTANCE_PATH", self.environ["TOLLGATE_INSTANCE_PATH"])
            self.control = create_app(
                app_config(
                    database_url,
                    STRIPE_SANDBOX_PATH=self.environ["STRIPE_SANDBOX_PATH"],
                    TOLLGATE_BASE_URL=self.environ["TOLLGATE_BASE_URL"],
                )
            )
        result = self.control.test_cli_runner().invoke(args=["catalog", "sync"])
        assert result.exit_code == 0, result.output

    @property
    def sandbox(self) -> Sandbox:
        sandbox: Sandbox = self.control.extensions["stripe_sandbox"]
        return sandbox


@pytest.fixture
def host(migrated_database: MigratedDatabase, tmp_path: Path) -> Iterator[Host]:
    made = Host(tmp_path, migrated_database.fresh_url(tmp_path), free_port())
    yield made
    migrated_database.clean(made.control)


def _enterprise_customers_over_credits(host: Host, count: int) -> list[int]:
    """In-arrears customers whose usage went past their credits: a fee and overage each."""
    ids = []
    for n in range(count):
        customer_id = new_subscriber(host.control, "enterprise_monthly", email=f"e{n}@x.io").id
        record(host.control, customer_id, f"big-{n}", "ai_chat", 10_000_000 + 1_000 * (n + 1))
        ids.append(customer_id)
    return ids


def test_clock_moved_from_another_process_is_kept_and_seen_by_every_worker(
    host: Host, tmp_path: Path, figures: Figures
) -> None:
    _enterprise_customers_over_credits(host, 3)
    server: Running = web(host.environ, host.port, tmp_path / "web.log", workers=2)
    base = f"http://127.0.0.1:{host.port}"
    stop = threading.Event()
    answers: Counter[int] = Counter()

    def browse() -> None:
        # Pages keep being served (and webhooks delivered by the server's tick) meanwhile.
        with httpx.Client(base_url=base, timeout=30) as client:
            while not stop.is_set():
                answers[client.get("/pricing").status_code] += 1

    browser = threading.Thread(target=browse)
    browser.start()
    moves = at_scale(6, 20)
    started = host.sandbox.now() - int(time.time())
    try:
        for _ in range(moves):
            moved = flask(host.environ, "sandbox", "advance", "--hours", "1")
            assert moved.returncode == 0, moved.stderr
        offset = host.sandbox.now() - int(time.time())
        # Every worker's view: Stripe stamps a new object with its clock.
        created = []
        for _ in range(8):
            with httpx.Client(base_url=f"{base}/sandbox", timeout=30) as fresh_connection:
                customer = fresh_connection.post(
                    "/v1/customers", auth=("sk_test_any", ""), data={"email": "c@x.io"}
                )
                created.append(customer.json()["created"] - int(time.time()))
        wait_until(lambda: not host.sandbox.pending_deliveries(), 60, server.log_tail())
    finally:
        stop.set()
        browser.join()
        server.stop()

    figures.add("clock moves made / kept", f"{moves} / {round((offset - started) / HOUR)}")
    figures.add("worker answers that saw every move", sum(c >= moves * HOUR - 5 for c in created))
    figures.add("pages served meanwhile (5xx)", f"{sum(answers.values())} ({answers[500]})")
    assert moves * HOUR <= offset - started <= moves * HOUR + 5
    assert all(moves * HOUR - 5 <= seen - started <= moves * HOUR + 60 for seen in created)
    assert set(answers) == {200}


def test_forwarders_on_several_hosts_send_each_batch_once_with_its_attempts_counted(
    host: Host, figures: Figures
) -> None:
    customers = _enterprise_customers_over_credits(host, at_scale(6, 20))
    # A slow Stripe, so that the forwarders' sends overlap.
    environ = {**host.environ, "STRIPE_SANDBOX_LATENCY_MS": "30"}
    results: list[subprocess.CompletedProcess[str]] = []
    forwarders = [
        threading.Thread(target=lambda: results.append(flask(environ, "usage", "forward")))
        for _ in range(3)
    ]
    for forwarder in forwarders:
        forwarder.start()
    for forwarder in forwarders:
        forwarder.join()
    assert all(result.returncode == 0 for result in results), [r.stderr for r in results]

    with host.control.app_context():
        batches = db.session.scalars(select(OverageBatch)).all()
        db.session.expunge_all()
    received = Counter(
        event["identifier"] for event in host.sandbox.store.all("billing.meter_event")
    )
    sends = sum(received.values())
    figures.add(
        "batches (fees and overage) / sent once / sent more",
        (
            f"{len(batches)} / {sum(received[b.identifier] == 1 for b in batches)}"
            f" / {sum(received[b.identifier] > 1 for b in batches)}"
        ),
    )
    fees = Counter(
        event["payload"]["stripe_customer_id"]
        for event in host.sandbox.store.all("billing.meter_event")
        if event["event_name"] == "tollgate_plan_fee"
    )
    figures.add("plan-fee meter events per customer and period", sorted(set(fees.values())))
    assert sorted(fees.values()) == [1] * len(customers)
    assert len(batches) == 2 * len(customers)
    assert all(batch.forwarded_at is not None for batch in batches)
    assert all(received[batch.identifier] == 1 for batch in batches)
    assert sends == len(batches)
    assert [batch.attempts for batch in batches] == [1] * len(batches)


def test_batch_held_by_a_forwarder_that_died_is_sent_after_its_claim_lapses(
    host: Host,
) -> None:
    _enterprise_customers_over_credits(host, 1)
    with host.control.app_context():
        forward_overage()  # batches them, and sends them
        db.session.execute(update(OverageBatch).values(forwarded_at=None))
        # Another forwarder holds them, sending right now.
        db.session.execute(update(OverageBatch).values(claimed_until=utcnow() + claim_length()))
        db.session.commit()
        assert forward_overage().sent == []
        # It died: its claim lapses, and the batches go (again: Stripe counts them once).
        lapsed = utcnow() - timedelta(seconds=1)
        db.session.execute(update(OverageBatch).values(claimed_until=lapsed))
        db.session.commit()
        assert len(forward_overage().sent) == 2


def test_meter_events_piling_up_keep_their_cost_and_a_repeat_counts_once(
    tmp_path: Path, figures: Figures
) -> None:
    sandbox = Sandbox(str(tmp_path / "sandbox.sqlite3"))
    customer = _post(sandbox, "/v1/customers", "email=m@x.io")
    _post(
        sandbox,
        "/v1/billing/meters",
        "display_name=Tokens&event_name=tokens&default_aggregation[formula]=sum",
    )
    piled = at_scale(1_500, 6_000)

    def send(identifier: str) -> float:
        started = time.perf_counter()
        _post(
            sandbox,
            "/v1/billing/meter_events",
            f"event_name=tokens&identifier={identifier}"
            f"&payload[stripe_customer_id]={customer['id']}&payload[value]=5",
        )
        return time.perf_counter() - started

    first = sorted(send(f"a-{n}") for n in range(100))[50]
    for n in range(piled):
        send(f"b-{n}")
    last = sorted(send(f"c-{n}") for n in range(100))[50]
    send("a-0")

    events = sandbox.store.all("billing.meter_event")
    figures.add("meter events stored", len(events))
    figures.add("median time of one, after / before the pile", f"{last / first:.2f}")
    repeats = [event for event in events if event["identifier"] == "a-0"]
    assert [event["_duplicate"] for event in repeats] == [True, False]


def _post(sandbox: Sandbox, path: str, body: str) -> dict[str, Any]:
    status, _, answer = sandbox.handle("POST", path, {"Authorization": "Bearer sk_test_any"}, body)
    assert status == 200, answer
    answered: dict[str, Any] = json.loads(answer)
    return answered
