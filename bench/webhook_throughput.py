"""Stripe's webhooks, signed as Stripe signs them, posted to Tollgate from several connections.

    .venv/bin/python bench/webhook_throughput.py
    .venv/bin/python bench/webhook_throughput.py --db sqlite --customers 500 --connections 4

As bench/import_bench.py does, one Tollgate served by gunicorn in sandbox mode plays Stripe over
HTTP: its sandbox is filled with `--customers` customers (1,000), each with a subscription and
two invoices with their charges, and the measured Tollgate (a fresh database, PostgreSQL by
default; see bench/run.py) imports that account, so its mirror knows every object. Then, served
with bench/run.py's gunicorn settings and STRIPE_WEBHOOK_SECRET set, it is sent events of those
customers in turn: customer.subscription.updated, invoice.paid, charge.succeeded and
customer.updated, each a new event id with the object as Stripe's API answers it, signed with
the SDK's own signing (the sandbox's, app/stripe_sandbox/webhooks.py) when it is sent. Each
event is verified, recorded, its object read again from Stripe (the served sandbox) and mirrored
through the sync path, and marked processed, as Stripe's own deliveries are.

`--connections` (8) keep-alive connections post as fast as answers come, for `--seconds` (5)
per run, after one unmeasured run; the same bodies go to bench/bare.py's POST endpoint, served
alike, as the baseline. `--runs` (3) runs each, taken in turn; the median run is printed:
events/s, p50, p99, errors, and the ratio to the baseline. The target: 500 events/s or more on
PostgreSQL. Figures, not pass/fail: see bench/README.md.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import stripe

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# The root goes on the path first.
from bench.backoffice_volume import percentile  # noqa: E402
from bench.import_bench import (  # noqa: E402
    SECRET,
    fill_stripe,
    forget_webhook_endpoints,
    mapped_catalog,
    stripe_and_database,
)
from bench.run import GUNICORN, arguments, gunicorn  # noqa: E402

WEBHOOK_SECRET = "whsec_bench"  # noqa: S105 (the bench's own endpoint)
BARE_PATH = "/api/v1/client/events"
# Event type, and the list its objects come from.
EVENT_TYPES = (
    ("customer.subscription.updated", "subscriptions"),
    ("invoice.paid", "invoices"),
    ("charge.succeeded", "charges"),
    ("customer.updated", "customers"),
)


@dataclass(frozen=True)
class Result:
    """One run against one server."""

    events: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def stripe_objects(stripe_url: str, per_type: int) -> dict[str, list[dict[str, Any]]]:
    """Up to ``per_type`` objects of each list the events carry, as Stripe's API answers."""
    objects: dict[str, list[dict[str, Any]]] = {}
    with httpx.Client(base_url=f"{stripe_url}/sandbox/v1", auth=(SECRET, ""), timeout=60) as http:
        for resource in {resource for _, resource in EVENT_TYPES}:
            found: list[dict[str, Any]] = []
            cursor: str | None = None
            while len(found) < per_type:
                params: dict[str, str | int] = {"limit": 100}
                if cursor:
                    params["starting_after"] = cursor
                page = http.get(f"/{resource}", params=params)
                page.raise_for_status()
                body = page.json()
                found += body["data"]
                if not body["has_more"] or not body["data"]:
                    break
                cursor = body["data"][-1]["id"]
            objects[resource] = found[:per_type]
    return objects


class Events:
    """Endless new events, the customers' objects taken in turn; each body is new JSON, ready
    to be signed when it is sent."""

    def __init__(self, objects: dict[str, list[dict[str, Any]]], run: str) -> None:
        self.objects, self.run = objects, run
        self.numbers = itertools.count()
        self.lock = threading.Lock()

    def next(self) -> str:
        with self.lock:
            number = next(self.numbers)
        event_type, resource = EVENT_TYPES[number % len(EVENT_TYPES)]
        of_type = self.objects[resource]
        stripe_object = of_type[number // len(EVENT_TYPES) % len(of_type)]
        return json.dumps(
            {
                "id": f"evt_bench_{self.run}_{number}",
                "object": "event",
                "api_version": stripe.api_version,
                "created": int(time.time()),
                "data": {"object": stripe_object},
                "livemode": False,
                "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None},
                "type": event_type,
            }
        )


def post_events(url: str, events: Events, connections: int, seconds: float) -> Result:
    """``connections`` threads, each on its own keep-alive connection, post signed events as
    fast as the server answers, for ``seconds``."""
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    deadline = time.perf_counter() + seconds

    def post(index: int) -> None:
        with httpx.Client(timeout=60) as client:
            while time.perf_counter() < deadline:
                body = events.next()
                signature = stripe.WebhookSignature.generate_signature_header(body, WEBHOOK_SECRET)
                headers = {
                    "Content-Type": "application/json; charset=utf-8",
                    "Stripe-Signature": signature,
                }
                started = time.perf_counter()
                response = client.post(url, content=body.encode(), headers=headers)
                latencies[index].append((time.perf_counter() - started) * 1000)
                if not 200 <= response.status_code < 300:
                    errors[index] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=post, args=(index,)) for index in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    every = [latency for latencies_of_one in latencies for latency in latencies_of_one]
    return Result(len(every), sum(errors), elapsed, every)


def prepare(tollgate_env: dict[str, str], stripe_dir: Path, workdir: Path, customers: int) -> None:
    """Migrate Tollgate, push its catalog to the served Stripe, fill that Stripe's account and
    import it."""
    os.environ.update(tollgate_env)
    import flask_migrate

    from app import create_app
    from app.billing.catalog_sync import sync_catalog
    from app.billing.gateway import gateway
    from app.billing.stripe_import import Importer
    from app.catalog import current_catalog, load_catalog
    from app.extensions import db

    app = create_app()
    with app.app_context():
        flask_migrate.upgrade()
        sync_catalog(current_catalog(), gateway())
    legacy, _ = fill_stripe(stripe_dir, customers, 2)
    catalog_path = mapped_catalog(workdir, legacy)
    app.extensions["tollgate.catalog"] = load_catalog(catalog_path)
    tollgate_env["TOLLGATE_PLANS"] = str(catalog_path)
    with app.app_context():
        started = time.perf_counter()
        report = Importer(gateway()).run()
        read = sum(part.read for part in report.types)
        print(f"imported:   {read:>9,} objects in {time.perf_counter() - started:.1f} s")
        db.session.remove()
        db.engine.dispose()


def main() -> None:
    parser = arguments(__doc__.split("\n\n")[0])
    parser.set_defaults(db="postgresql", customers=1_000)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        stripe_dir = workdir / "stripe"
        with stripe_and_database(workdir, args.db, args.postgres_url) as (
            stripe_url,
            database_url,
        ):
            tollgate_env = {
                "TOLLGATE_INSTANCE_PATH": str(workdir / "tollgate"),
                "DATABASE_URL": database_url,
                "SECRET_KEY": "bench",
                "STRIPE_SECRET_KEY": SECRET,
                "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "STRIPE_API_BASE": f"{stripe_url}/sandbox",
                "LOG_LEVEL": "WARNING",
            }
            forget_webhook_endpoints(stripe_url)
            print(f"# {args.db}: {args.customers:,} customers in the served Stripe", flush=True)
            prepare(tollgate_env, stripe_dir, workdir, args.customers)
            objects = stripe_objects(stripe_url, args.customers)
            with (
                gunicorn("bench.bare:app", tollgate_env) as bare,
                gunicorn("wsgi:app", tollgate_env) as tollgate,
            ):
                targets = {"bare": f"{bare}{BARE_PATH}", "tollgate": f"{tollgate}/stripe/webhook"}
                results: dict[str, list[Result]] = {name: [] for name in targets}
                for run in range(args.runs + 1):
                    for name, url in targets.items():
                        events = Events(objects, f"{name}{run}")
                        result = post_events(url, events, args.connections, args.seconds)
                        if run:  # the first run warms up, unmeasured
                            results[name].append(result)
            print_lines(args, results)


def print_lines(args: Any, results: dict[str, list[Result]]) -> None:
    """The median run of each, the baseline first."""
    print(
        f"# gunicorn {' '.join(GUNICORN)}; load: {args.connections} connections posting as "
        f"fast as answered; median of {args.runs} runs of {args.seconds:g} s, taken in turn, "
        "after one unmeasured"
    )
    median = {
        name: sorted(runs, key=lambda result: result.rate)[len(runs) // 2]
        for name, runs in results.items()
    }
    labels = {"bare": "bare JSON POST, peak", "tollgate": "Stripe webhooks, signed, peak"}
    for name, result in median.items():
        ratio = result.rate / median["bare"].rate
        print(
            f"{labels[name]:<34} {result.rate:>7.0f} events/s  "
            f"p50 {statistics.median(result.latencies):>7.2f} ms  "
            f"p99 {percentile(result.latencies, 0.99):>7.2f} ms  errors {result.errors:<4}"
            + ("  baseline" if name == "bare" else f" {ratio:6.1%} of bare")
        )


if __name__ == "__main__":
    main()
