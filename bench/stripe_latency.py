"""Entitlement checks and account pages while Stripe is slow, next to the same with a fast Stripe.

    .venv/bin/python bench/stripe_latency.py
    .venv/bin/python bench/stripe_latency.py --db postgresql --latency-ms 2000 --seconds 30

For each database (SQLite and PostgreSQL by default; `--db` picks one), two runs: Tollgate on its
Stripe sandbox answering at once, then with every Stripe call taking `--latency-ms` (500 by
default, STRIPE_SANDBOX_LATENCY_MS). Each run starts from a fresh database and a fresh sandbox,
serves Tollgate with bench/run.py's gunicorn configuration, and measures at the same time:

- entitlement checks, sent by wrk (bench/load.lua) paced at a fixed rate well below their peak;
- account pages (GET /account) of logged-in users on an in-arrears plan, paced in Python;

while writers, not measured but counted, take a new customer every few seconds through the API:
created, subscribed to the free plan, then to a paid one through the sandbox's Checkout page,
upgraded and downgraded; the webhooks that causes are delivered and processed meanwhile. It
prints, per database, both runs side by side: requests/s, p50 and p99 of the checks and of the
account page, with the ratio slow/fast, and what the writers and the webhooks got through.
Figures, not pass/fail: see bench/README.md.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import random
import re
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.run import (  # noqa: E402 (the repository's root goes on the path first)
    GUNICORN,
    WARM_UP_SECONDS,
    WRK,
    Result,
    database,
    free_port,
    gunicorn,
    run_wrk,
    seed,
)

# Entitlement checks asked of wrk, in requests/s. bench/run.py measures a check's peak on the
# project's 2-core machine at 4,600-4,800/s with nothing else running, and a check's p99 stays
# low at half of that. Here the same two cores also render the account pages, serve the writers
# and the webhooks, run this script's threads and, often, someone's tests: 1,000/s, about a
# quarter of that peak, is a rate the fast run carries with room to spare, so that what the slow
# run loses shows as a loss and not as a saturated server in both runs. wrk paces each
# connection by waiting between an answer and its next request, so the rate it reaches falls
# short of the rate asked by about the answers' own time; the table shows both.
CHECK_RATE = 1000.0
# Fewer connections than bench/run.py's 16: gunicorn takes at most 12 per worker (GUNICORN), and
# the page readers, the writers and the sandbox's webhook deliveries need theirs too.
CHECK_CONNECTIONS = 8
# Account pages: each reader is one logged-in user on a connection of its own.
PAGE_READERS = 4
PAGE_RATE = 20.0
# Writers: customer journeys (Writers) start at this rate in both runs, each on the next free
# of the writer threads. The same writes in both runs: what differs is Stripe's latency alone.
# Each journey makes about 8 requests to Tollgate, and about as many webhooks.
JOURNEYS_PER_MINUTE = 15.0
WRITERS = 4
# Account readers are on this plan: in arrears, so the API subscribes them without Checkout, and
# their page shows usage and a credit pool.
READER_PLAN = "enterprise_monthly"
READER_PASSWORD = "bench latency password"  # noqa: S105 (a throwaway account of the run)
CARD = "4242 4242 4242 4242"
CSRF_INPUT = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@dataclass
class Writes:
    """What the writers did in the measured window."""

    completed: Counter[str] = field(default_factory=Counter)  # step -> count
    failed: Counter[str] = field(default_factory=Counter)  # "step status" -> count
    reasons: dict[str, str] = field(default_factory=dict)  # "step status" -> the API's message
    seconds: list[float] = field(default_factory=list)  # each completed step's duration
    journeys: int = 0  # customers taken through every step
    late: int = 0  # of those, how many started more than 1 s after their time


@dataclass
class Run:
    """One run: the sandbox's latency and what was measured."""

    latency_ms: int
    checks: Result
    pages: Result
    writes: Writes
    before: Webhooks  # at the start of the measured window
    after: Webhooks  # at its end


def prepare(env: dict[str, str], customers: int, readers: int) -> tuple[str, list[str]]:
    """Seed a fresh database (bench/run.py's customers and API key), push plans.toml to the
    fresh sandbox, and make ``readers`` users; returns the API key and the users' reference ids.

    Runs in a process of its own (``in_child``): seed() takes its settings from os.environ.
    """
    key = seed(
        {
            **env,
            # seed() loads straight into the database and calls no Stripe.
            "STRIPE_SECRET_KEY": "sk_test_bench_not_used",
            "STRIPE_WEBHOOK_SECRET": "whsec_bench_not_used",
            "TOLLGATE_CHECK_CACHE": "off",
        },
        customers,
    )
    for name in ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"):
        del os.environ[name]
    from app import create_app
    from app.accounts.services import register
    from app.billing.catalog_sync import sync_catalog
    from app.billing.gateway import gateway
    from app.catalog import current_catalog
    from app.config import Config
    from app.extensions import db

    settings = Config.from_environ(Path(env["TOLLGATE_INSTANCE_PATH"]), os.environ)
    # The server delivers the webhooks, once it runs; this process would only fail to.
    app = create_app({**settings, "SANDBOX_DELIVER_WEBHOOKS": False})
    with app.app_context():
        sync_catalog(current_catalog(), gateway())
        users = [register(f"reader{n}@example.com", READER_PASSWORD) for n in range(readers)]
        references = [user.customer.reference_id for user in users]
        db.session.commit()
        db.engine.dispose()
    return key, references


def in_child(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` in a fresh process: the app it builds, its threads and the settings
    it puts in os.environ go with that process."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as executor:
        return executor.submit(function, *args).result()


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def api(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def check_ready(base: str, key: str) -> None:
    """Stop with the server's answer when Tollgate does not serve its API."""
    try:
        answer = httpx.get(f"{base}/api/v1/client/plans", headers=api(key), timeout=60)
    except httpx.HTTPError as exc:
        raise SystemExit(f"Tollgate did not start at {base}: {exc!r}") from None
    if answer.status_code != 200:
        raise SystemExit(f"Tollgate answered GET /plans with {answer.status_code}: {answer.text}")


def subscribe(base: str, key: str, references: list[str], plan: str) -> None:
    """Subscribe the customers to ``plan`` through the API, all at once; a 503 (the database
    was busy and nothing was written) is tried again after its Retry-After, a few times."""

    def one(reference: str) -> None:
        for _ in range(10):
            answer = httpx.post(
                f"{base}/api/v1/client/subscriptions",
                headers=api(key),
                json={"customerReferenceId": reference, "planId": plan},
                timeout=120,
            )
            if answer.status_code != 503:
                break
            time.sleep(float(answer.headers.get("Retry-After", "1")))
        if answer.status_code != 201:
            raise SystemExit(
                f"subscribing {reference} to {plan}: {answer.status_code} {answer.text}"
            )

    with ThreadPoolExecutor(len(references)) as pool:
        list(pool.map(one, references))


class PageReaders:
    """Logged-in users who each load their account page, paced as bench/load.lua paces wrk:
    an exponential wait between one answer and the next request, the first at once."""

    def __init__(self, base: str, emails: list[str], rate: float) -> None:
        self.clients = [httpx.Client(base_url=base, timeout=60) for _ in emails]
        self.emails = emails
        self.rate = rate

    def log_in(self) -> None:
        for client, email in zip(self.clients, self.emails, strict=True):
            form = client.get("/login")
            token = CSRF_INPUT.search(form.text)
            if token is None:
                raise SystemExit(f"no CSRF token on /login ({form.status_code})")
            answer = client.post(
                "/login",
                data={"csrf_token": token.group(1), "email": email, "password": READER_PASSWORD},
            )
            page = client.get("/account")
            if answer.status_code not in (302, 303) or page.status_code != 200:
                raise SystemExit(
                    f"{email} could not log in: /login {answer.status_code}, "
                    f"/account {page.status_code}"
                )

    def run(self, seconds: float) -> Result:
        """Load account pages for ``seconds``; p50 and p99 of the answers, as wrk measures."""
        deadline = time.perf_counter() + seconds
        mean_wait = len(self.clients) / self.rate
        latencies: list[float] = []
        errors = 0
        lock = threading.Lock()

        def read(client: httpx.Client) -> None:
            nonlocal errors
            chance = random.Random()  # noqa: S311 (arrival times, not secrets)
            while True:
                started = time.perf_counter()
                if started >= deadline:
                    return
                try:
                    ok = client.get("/account").status_code == 200
                except httpx.HTTPError:
                    ok = False
                took = time.perf_counter() - started
                with lock:
                    if ok:
                        latencies.append(took * 1000)
                    else:
                        errors += 1
                time.sleep(
                    max(0.0, min(chance.expovariate(1 / mean_wait), deadline - time.perf_counter()))
                )

        started = time.perf_counter()
        with ThreadPoolExecutor(len(self.clients)) as pool:
            list(pool.map(read, self.clients))
        elapsed = time.perf_counter() - started
        return Result(
            len(latencies), errors, elapsed, percentile(latencies, 0.5), percentile(latencies, 0.99)
        )

    def close(self) -> None:
        for client in self.clients:
            client.close()


class StepFailed(Exception):
    """A writer's step answered other than expected: that customer's journey ends there."""


class Writers:
    """Customer journeys started at a fixed rate, each by the next free writer thread: create a
    customer, subscribe it to the free plan, start Starter through Checkout and pay on the
    sandbox's page, come back to Tollgate's page after Checkout, upgrade to Pro, and schedule a
    downgrade back to Starter. Every step but the payment and the read calls Stripe from
    Tollgate, and most cause webhooks, which the sandbox delivers to the same server.

    The same journeys start at the same times whatever Stripe's latency, so that two runs differ
    in that alone; a slow Stripe makes each journey take longer, so more are under way at once.
    When all the threads are busy, the next journey starts late: the table counts those."""

    def __init__(self, base: str, key: str, threads: int, per_minute: float) -> None:
        self.base, self.key = base, key
        self.interval = 60 / per_minute
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.started = 0.0
        self.begun = 0
        # (end, step, status, ok, seconds taken) of each step; (end, late) of each journey done
        self.steps: list[tuple[float, str, str, bool, float]] = []
        self.journeys: list[tuple[float, bool]] = []
        self.reasons: dict[str, str] = {}  # "step status" -> the first refusal's message
        self.threads = [
            threading.Thread(target=self.loop, args=(number,), daemon=True)
            for number in range(threads)
        ]

    def start(self) -> None:
        self.started = time.perf_counter()
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        """Start no more steps; wait for those in flight, a minute at most."""
        self.stopping.set()
        deadline = time.monotonic() + 60
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def loop(self, number: int) -> None:
        with httpx.Client(base_url=self.base, timeout=120) as client:
            while True:
                with self.lock:
                    due = self.started + self.begun * self.interval
                    self.begun += 1
                    journey = self.begun
                if self.stopping.wait(max(0.0, due - time.perf_counter())):
                    return
                late = time.perf_counter() - due > 1.0
                with suppress(StepFailed):
                    self.journey(client, f"writer-{journey}-{time.time_ns()}")
                    with self.lock:
                        self.journeys.append((time.perf_counter(), late))

    def step(
        self, client: httpx.Client, name: str, expect: int, method: str, url: str, **kwargs: Any
    ) -> httpx.Response:
        if self.stopping.is_set():
            raise StepFailed("stopping")
        started = time.perf_counter()
        answer = None
        try:
            answer = client.request(method, url, **kwargs)
            status = str(answer.status_code)
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        end = time.perf_counter()
        with self.lock:
            self.steps.append((end, name, status, status == str(expect), end - started))
        if answer is None or answer.status_code != expect:
            if answer is not None and answer.headers.get("content-type") == "application/json":
                error = answer.json().get("error") or {}
                with self.lock:
                    self.reasons.setdefault(
                        f"{name} {status}", f"{error.get('code')}: {error.get('message')}"
                    )
            raise StepFailed(f"{name}: {status}")
        return answer

    def journey(self, client: httpx.Client, reference: str) -> None:
        headers = api(self.key)
        self.step(
            client,
            "create customer",
            201,
            "POST",
            "/api/v1/client/customers",
            headers=headers,
            json={"customerReferenceId": reference, "email": f"{reference}@example.com"},
        )
        self.step(
            client,
            "subscribe free",
            201,
            "POST",
            "/api/v1/client/subscriptions",
            headers=headers,
            json={"customerReferenceId": reference, "planId": "free"},
        )
        checkout = self.step(
            client,
            "start checkout",
            200,
            "POST",
            "/api/v1/client/subscriptions",
            headers=headers,
            json={"customerReferenceId": reference, "planId": "starter_monthly"},
        ).json()["data"]["checkoutUrl"]
        # Stripe's hosted page: the sandbox serves it from the same server, and takes no latency.
        paid = self.step(
            client,
            "pay on checkout",
            303,
            "POST",
            checkout,
            data={"email": "", "card_number": CARD, "expiry": "12 / 34", "cvc": "123"},
        )
        self.step(client, "back from checkout", 200, "GET", paid.headers["location"])
        read = self.step(
            client,
            "read customer",
            200,
            "GET",
            f"/api/v1/client/customers/{reference}",
            headers=headers,
        )
        starter = next(
            (
                each["id"]
                for each in read.json()["data"]["subscriptions"]
                if each["planId"] == "starter_monthly"
            ),
            None,
        )
        if starter is None:
            with self.lock:
                self.steps.append((time.perf_counter(), "read customer", "no Starter", False, 0))
            raise StepFailed("no Starter subscription after Checkout")
        for plan, kind in (("pro_monthly", "UPGRADE"), ("starter_monthly", "DOWNGRADE")):
            self.step(
                client,
                f"plan change {kind.lower()}",
                200,
                "POST",
                f"/api/v1/client/subscriptions/{starter}/plan-change",
                headers=headers,
                json={"changeToPlanId": plan, "changeType": kind},
            )

    def between(self, start: float, end: float) -> Writes:
        """What ended between ``start`` and ``end`` (time.perf_counter())."""
        writes = Writes()
        with self.lock:
            for ended, name, status, ok, took in self.steps:
                if start <= ended <= end:
                    if ok:
                        writes.completed[name] += 1
                        writes.seconds.append(took)
                    else:
                        writes.failed[f"{name} {status}"] += 1
                        if f"{name} {status}" in self.reasons:
                            writes.reasons[f"{name} {status}"] = self.reasons[f"{name} {status}"]
            for ended, late in self.journeys:
                if start <= ended <= end:
                    writes.journeys += 1
                    writes.late += late
        return writes


@dataclass(frozen=True)
class Webhooks:
    """The webhooks so far, from Tollgate's event log and the sandbox's events."""

    processed: int  # events Tollgate has processed
    failing: int  # events whose last delivery Tollgate answered with an error
    waiting: int  # events the sandbox has sent or will send that Tollgate has not processed
    oldest_waiting: float  # seconds since the oldest of those happened


def webhooks(database_url: str, sandbox_path: Path) -> Webhooks:
    """Count the webhooks now. What is waiting is counted against Tollgate's own log, not the
    sandbox's deliveries: each worker's delivery thread sends every event, and the sandbox can
    count an event processed by one as undelivered when the other's attempt failed."""
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT event_id, processed_at IS NOT NULL, last_error FROM stripe_events")
            ).all()
    finally:
        engine.dispose()
    processed = {event for event, done, _ in rows if done}
    failing = sum(1 for _, done, error in rows if not done and error is not None)
    with sqlite3.connect(f"file:{sandbox_path}?mode=ro", uri=True, timeout=30) as sandbox:
        events = sandbox.execute(
            "SELECT DISTINCT deliveries.event_id, json_extract(objects.data, '$.created') "
            "FROM deliveries JOIN objects ON objects.id = deliveries.event_id"
        ).fetchall()
    # The sandbox's clock runs with real time here: nothing advances it.
    waiting = [created for event, created in events if event not in processed]
    oldest = time.time() - min(waiting) if waiting else 0.0
    return Webhooks(len(processed), failing, len(waiting), max(0.0, oldest))


@dataclass(frozen=True)
class Settings:
    """The run's load, from the command line."""

    customers: int
    seconds: float
    warm_up: float
    check_rate: float
    page_rate: float
    readers: int
    writers: int
    journeys_per_minute: float
    threads: int  # gunicorn's threads per worker

    def gunicorn(self) -> list[str]:
        """bench/run.py's gunicorn options, with ``threads`` threads per worker. Each worker
        then takes 8 connections more than it has threads, as bench/run.py's 12 for 4 do."""
        options = list(GUNICORN)
        if self.threads != int(options[options.index("--threads") + 1]):
            options[options.index("--threads") + 1] = str(self.threads)
            options[options.index("--worker-connections") + 1] = str(self.threads + 8)
        return options


def run(kind: str, postgres_url: str | None, latency_ms: int, settings: Settings) -> Run:
    """One run against a fresh database and sandbox, Stripe answering after ``latency_ms``."""
    workdir = Path(tempfile.mkdtemp(prefix="tollgate-latency-"))
    try:
        with ExitStack() as stack:
            url = stack.enter_context(database(kind, postgres_url, workdir))
            port = free_port()
            sandbox_path = workdir / "stripe_sandbox.sqlite3"
            env = {
                "DATABASE_URL": url,
                "SECRET_KEY": "bench",
                "TOLLGATE_INSTANCE_PATH": str(workdir),
                "STRIPE_SANDBOX_PATH": str(sandbox_path),
                # Checkout's return URLs and the webhook endpoint point at the server.
                "TOLLGATE_BASE_URL": f"http://127.0.0.1:{port}",
            }
            key, references = in_child(prepare, env, settings.customers, settings.readers)
            served = {**env, "STRIPE_SANDBOX_LATENCY_MS": str(latency_ms)}
            base = stack.enter_context(
                gunicorn("wsgi:app", served, port=port, options=settings.gunicorn())
            )
            check_ready(base, key)
            subscribe(base, key, references, READER_PLAN)
            emails = [f"reader{n}@example.com" for n in range(settings.readers)]
            pages = PageReaders(base, emails, settings.page_rate)
            stack.callback(pages.close)
            pages.log_in()
            writers = Writers(base, key, settings.writers, settings.journeys_per_minute)
            # Registered last, so it runs first: no writer is left waiting on a stopped server.
            stack.callback(writers.stop)

            def checks(seconds: float, rate: float | None) -> Result:
                return run_wrk(
                    base,
                    "check",
                    key=key,
                    customers=settings.customers,
                    seconds=seconds,
                    connections=CHECK_CONNECTIONS,
                    rate=rate,
                )

            with ThreadPoolExecutor(1) as page_thread:
                # Before anything is measured, the writers get going, and each worker's check
                # cache fills as a running deployment's has (bench/run.py's warm-up).
                writers.start()
                warming = page_thread.submit(pages.run, settings.warm_up)
                checks(settings.warm_up, None)
                warming.result()
                before = webhooks(url, sandbox_path)
                start = time.perf_counter()
                reading = page_thread.submit(pages.run, settings.seconds)
                checked = checks(settings.seconds, settings.check_rate)
                read = reading.result()
                end = time.perf_counter()
                after = webhooks(url, sandbox_path)
            writers.stop()
            return Run(latency_ms, checked, read, writers.between(start, end), before, after)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def table(fast: Run, slow: Run, settings: Settings) -> list[str]:
    """Both runs side by side, with the ratio slow/fast where it means something."""
    lines = [f"{'':<44} {f'Stripe {fast.latency_ms} ms':>14} {f'Stripe {slow.latency_ms} ms':>14}"]
    lines[0] += "  slow/fast"

    def row(name: str, values: tuple[float, float], digits: int = 0, compare: bool = True) -> None:
        one, other = values
        shown = f"{other / one:9.1%}" if compare and one else ""
        lines.append(f"{name:<44} {one:14,.{digits}f} {other:14,.{digits}f}  {shown}".rstrip())

    measured = (
        ("entitlement checks", settings.check_rate, fast.checks, slow.checks),
        ("account page", settings.page_rate, fast.pages, slow.pages),
    )
    for name, asked, one, other in measured:
        row(f"{name}, req/s (asked {asked:,.0f})", (one.rate, other.rate), 1)
        row(f"{name}, p50 ms", (one.p50, other.p50), 2)
        row(f"{name}, p99 ms", (one.p99, other.p99), 2)
        row(f"{name}, errors", (one.errors, other.errors), compare=False)
    a, b = fast.writes, slow.writes
    row("writers: customer journeys completed", (a.journeys, b.journeys))
    row("writers: journeys started late", (a.late, b.late), compare=False)
    row("writers: steps completed", (a.completed.total(), b.completed.total()))
    row("writers: steps failed", (a.failed.total(), b.failed.total()), compare=False)
    row(
        "writers: step p50 ms",
        (percentile(a.seconds, 0.5) * 1000, percentile(b.seconds, 0.5) * 1000),
    )
    processed = [run.after.processed - run.before.processed for run in (fast, slow)]
    row("webhooks: events processed", (processed[0], processed[1]))
    row(
        "webhooks: events failing at the end",
        (fast.after.failing, slow.after.failing),
        compare=False,
    )
    row(
        "webhooks: events waiting at the end",
        (fast.after.waiting, slow.after.waiting),
        compare=False,
    )
    row(
        "webhooks: oldest waiting at the end, s",
        (fast.after.oldest_waiting, slow.after.oldest_waiting),
        1,
        compare=False,
    )
    for each in (fast, slow):
        steps = ", ".join(
            f"{name} x{count}"
            + (f" ({each.writes.reasons[name]})" if name in each.writes.reasons else "")
            for name, count in sorted(each.writes.failed.items())
        )
        if steps:
            lines.append(f"# Stripe {each.latency_ms} ms, writer steps failed: {steps}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--postgres-url", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument(
        "--latency-ms", type=int, default=500, help="each Stripe call's wait in the slow run"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="measured, per run")
    parser.add_argument("--warm-up", type=float, default=WARM_UP_SECONDS, help="per run")
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--check-rate", type=float, default=CHECK_RATE, help="checks/s")
    parser.add_argument("--page-rate", type=float, default=PAGE_RATE, help="account pages/s")
    parser.add_argument("--readers", type=int, default=PAGE_READERS, help="logged-in users")
    parser.add_argument("--writers", type=int, default=WRITERS, help="writer threads")
    parser.add_argument(
        "--journeys-per-minute",
        type=float,
        default=JOURNEYS_PER_MINUTE,
        help="customer journeys the writers start",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=int(GUNICORN[GUNICORN.index("--threads") + 1]),
        help="gunicorn's threads per worker (bench/run.py's by default)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="runs at each latency, taken in turn; the one with the median check rate is shown",
    )
    args = parser.parse_args()
    if args.latency_ms <= 0:
        parser.error("--latency-ms: the slow run's latency, more than 0")
    if WRK is None:
        raise SystemExit("bench/stripe_latency.py drives the checks with wrk: apt install wrk")
    # Sandbox mode: Tollgate must not find Stripe keys in the environment it inherits.
    for name in ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "STRIPE_API_BASE"):
        os.environ.pop(name, None)
    settings = Settings(
        args.customers,
        args.seconds,
        args.warm_up,
        args.check_rate,
        args.page_rate,
        args.readers,
        args.writers,
        args.journeys_per_minute,
        args.threads,
    )
    for kind in ["sqlite", "postgresql"] if args.db == "both" else [args.db]:
        taken: dict[int, list[Run]] = {0: [], args.latency_ms: []}
        for number in range(args.runs):
            for latency_ms, results in taken.items():
                print(
                    f"# {kind}, Stripe {latency_ms} ms: run {number + 1} of {args.runs}",
                    file=sys.stderr,
                    flush=True,
                )
                results.append(run(kind, args.postgres_url, latency_ms, settings))
        # For each latency, the run with the median check rate, as bench/run.py's in_turn().
        fast, slow = (
            sorted(results, key=lambda each: each.checks.rate)[len(results) // 2]
            for results in taken.values()
        )
        print(
            f"# {kind}: {settings.customers:,} customers; "
            f"gunicorn {' '.join(settings.gunicorn())}\n"
            f"# checks: wrk, 1 thread, {CHECK_CONNECTIONS} connections; account pages: "
            f"{settings.readers} users; writers: {settings.journeys_per_minute:g} customer "
            f"journeys a minute on {settings.writers} threads; {settings.seconds:g} s measured "
            f"after {settings.warm_up:g} s of warm-up; "
            + (f"median of {args.runs} runs, taken in turn" if args.runs > 1 else "one run each")
        )
        print("\n".join(table(fast, slow, settings)))
        print()


if __name__ == "__main__":
    main()
