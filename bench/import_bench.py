"""`flask stripe import` and `flask stripe reconcile` against a Stripe served over HTTP.

    .venv/bin/python bench/import_bench.py
    .venv/bin/python bench/import_bench.py --db postgresql --customers 2000 --invoices 12

One Tollgate, served by gunicorn in sandbox mode, plays Stripe: its sandbox is filled with an
account Tollgate did not create (`flask sandbox fill`: `--customers` customers, 10,000 by
default, each with a subscription and `--invoices` invoices, 24 by default, with their charges,
and some refunds and disputes). A second Tollgate, configured with a Stripe key and
STRIPE_API_BASE pointing at the first, as it would be at Stripe, then:

1. reads every page of the lists the import reads with plain HTTP and nothing else: what the
   served sandbox itself answers, objects/s;
2. imports the account: objects/s, beside (1);
3. reconciles once (the cursor), then again after `--changes` objects (1,000) were changed in
   Stripe with their webhooks never delivered: how long that run takes.

Prints figures, not pass or fail: see bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.run import database, gunicorn  # noqa: E402

# The lists `flask stripe import` reads, with the parameters it reads them with.
LISTS = (
    ("products", {}),
    ("prices", {}),
    ("customers", {}),
    ("subscriptions", {"status": "all"}),
    ("invoices", {"expand[]": "data.payments"}),
    ("charges", {}),
    ("refunds", {"expand[]": "data.charge"}),
    ("disputes", {"expand[]": "data.charge"}),
)
SECRET = "sk_test_bench"  # noqa: S105 - the key of a test-mode sandbox


def fill_stripe(
    stripe_dir: Path, customers: int, invoices: int
) -> tuple[dict[str, str | None], float]:
    """Fill the served sandbox's file with the account; (legacy prices, seconds)."""
    from app.stripe_sandbox import Sandbox
    from app.stripe_sandbox.fill import FillOptions, fill

    started = time.perf_counter()
    summary = fill(
        Sandbox(str(stripe_dir / "stripe_sandbox.sqlite3")),
        FillOptions(customers=customers, invoices=invoices, seed=1),
    )
    print(
        f"filled:     {sum(summary.objects.values()):>9,} objects in "
        f"{time.perf_counter() - started:.1f} s ({summary.objects})"
    )
    return summary.legacy_prices, time.perf_counter() - started


def list_throughput(stripe_url: str) -> tuple[int, float]:
    """Every page of every list the import reads, over plain HTTP: (objects, seconds)."""
    objects, started = 0, time.perf_counter()
    with httpx.Client(base_url=f"{stripe_url}/sandbox/v1", auth=(SECRET, ""), timeout=60) as http:
        for resource, params in LISTS:
            cursor: str | None = None
            while True:
                page = http.get(
                    f"/{resource}",
                    params={
                        **params,
                        "limit": 100,
                        **({"starting_after": cursor} if cursor else {}),
                    },
                )
                page.raise_for_status()
                body = page.json()
                objects += len(body["data"])
                if not body["has_more"] or not body["data"]:
                    break
                cursor = body["data"][-1]["id"]
    return objects, time.perf_counter() - started


def mapped_catalog(workdir: Path, legacy: dict[str, str | None]) -> Path:
    """plans.toml with each legacy price listed under its plan, as the operator would."""
    text = (REPO / "plans.toml").read_text()
    by_plan: dict[str, list[str]] = {}
    for price_id, plan_key in legacy.items():
        if plan_key is not None:
            by_plan.setdefault(plan_key, []).append(price_id)
    for plan_key, price_ids in by_plan.items():
        header = f"[plans.{plan_key}]\n"
        listed = ", ".join(f'"{price_id}"' for price_id in price_ids)
        text = text.replace(header, f"{header}stripe_prices = [{listed}]\n")
    path = workdir / "plans.toml"
    path.write_text(text)
    return path


def forget_webhook_endpoints(stripe_url: str) -> None:
    """The served Tollgate registered itself with its own sandbox; the changes below reach the
    measured Tollgate only through reconciliation."""
    with httpx.Client(base_url=f"{stripe_url}/sandbox/v1", auth=(SECRET, ""), timeout=60) as http:
        for endpoint in http.get("/webhook_endpoints", params={"limit": 100}).json()["data"]:
            http.delete(f"/webhook_endpoints/{endpoint['id']}").raise_for_status()


def change_in_stripe(stripe_url: str, count: int) -> None:
    """``count`` objects changed in Stripe's dashboard: customers' emails, and subscriptions
    set to cancel at period end, about half each."""
    with httpx.Client(base_url=f"{stripe_url}/sandbox/v1", auth=(SECRET, ""), timeout=60) as http:
        customers = http.get("/customers", params={"limit": 100}).json()["data"]
        subscriptions: list[dict[str, object]] = []
        cursor = None
        while len(subscriptions) < count:
            params = {
                "limit": 100,
                "status": "active",
                **({"starting_after": cursor} if cursor else {}),
            }
            page = http.get("/subscriptions", params=params).json()
            subscriptions += page["data"]
            if not page["has_more"]:
                break
            cursor = page["data"][-1]["id"]
        cursor = customers[-1]["id"] if customers else None
        while len(customers) < count:
            page = http.get("/customers", params={"limit": 100, "starting_after": cursor}).json()
            customers += page["data"]
            if not page["has_more"]:
                break
            cursor = page["data"][-1]["id"]
        half = count // 2
        for customer in customers[: count - min(half, len(subscriptions))]:
            http.post(
                f"/customers/{customer['id']}",
                data={"email": f"moved-{customer['id']}@example.com"},
            ).raise_for_status()
        for subscription in subscriptions[:half]:
            http.post(
                f"/subscriptions/{subscription['id']}", data={"cancel_at_period_end": "true"}
            ).raise_for_status()


@contextmanager
def stripe_and_database(
    workdir: Path, kind: str, postgres_url: str | None
) -> Iterator[tuple[str, str]]:
    """A Tollgate in sandbox mode served over HTTP to play Stripe (its instance in
    ``workdir``/stripe), and a fresh database for the Tollgate measured: their URLs."""
    stripe_dir = workdir / "stripe"
    stripe_dir.mkdir()
    stripe_env = {
        "TOLLGATE_INSTANCE_PATH": str(stripe_dir),
        "DATABASE_URL": f"sqlite:///{stripe_dir / 'stripe-side.sqlite3'}",
        "SECRET_KEY": "bench",
        "STRIPE_SECRET_KEY": "",
        "LOG_LEVEL": "WARNING",
    }
    with (
        gunicorn("wsgi:app", stripe_env) as stripe_url,
        database(kind, postgres_url, workdir) as database_url,
    ):
        yield stripe_url, database_url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-url", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--invoices", type=int, default=24)
    parser.add_argument("--changes", type=int, default=1_000)
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
                "STRIPE_WEBHOOK_SECRET": "whsec_bench",
                "STRIPE_API_BASE": f"{stripe_url}/sandbox",
                "STRIPE_WORKER_TIMEOUT_SECONDS": "120",
                "LOG_LEVEL": "WARNING",
            }
            forget_webhook_endpoints(stripe_url)
            os.environ.update(tollgate_env)
            import flask_migrate

            from app import create_app
            from app.billing.catalog_sync import sync_catalog
            from app.billing.gateway import gateway
            from app.billing.reconcile import reconcile
            from app.billing.stripe_import import Importer
            from app.catalog import current_catalog, load_catalog

            app = create_app()
            with app.app_context():
                flask_migrate.upgrade()
                sync_catalog(current_catalog(), gateway())
            legacy, _ = fill_stripe(stripe_dir, args.customers, args.invoices)
            app.extensions["tollgate.catalog"] = load_catalog(mapped_catalog(workdir, legacy))

            listed, list_seconds = list_throughput(stripe_url)
            print(
                f"sandbox lists over HTTP: {listed:>9,} objects in {list_seconds:.1f} s, "
                f"{listed / list_seconds:,.0f} objects/s"
            )

            with app.app_context():
                started = time.perf_counter()
                report = Importer(gateway()).run()
                seconds = time.perf_counter() - started
            read = sum(part.read for part in report.types)
            print(
                f"import ({args.db}): {read:>9,} objects in {seconds:.1f} s, "
                f"{read / seconds:,.0f} objects/s ({read / seconds / (listed / list_seconds):.2f} "
                "of the lists alone)"
            )
            for part in report.types:
                print(f"  {part.object_type:<14} {dict(part.counts)}")

            with app.app_context():
                reconcile(full_sweep=False)
                change_in_stripe(stripe_url, args.changes)
                started = time.perf_counter()
                run = reconcile(full_sweep=False)
                seconds = time.perf_counter() - started
                print(
                    f"reconcile after {args.changes:,} changes: {run.objects_checked:,} objects "
                    f"checked, {len(run.differences):,} differences repaired, {seconds:.1f} s "
                    f"({run.status.value})"
                )


if __name__ == "__main__":
    main()
