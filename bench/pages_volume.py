"""A busy customer's own pages, /account and /pricing, each timed beside a trivial endpoint.

    .venv/bin/python bench/pages_volume.py
    .venv/bin/python bench/pages_volume.py --db sqlite --customers 2000 --busy-events 200000

Fills a fresh database (PostgreSQL by default, one of the run's own; see bench/run.py) with
`--customers` customers (10,000) and two years of their billing with `--usage-events` usage
events (200,000) among them (bench/volume_data.py's fill), and one more customer who logs in:
a year on Pro, monthly (12 billing periods, their invoices, credit pools, lots and ledger, usage
counters, the billable overage in the outbox) and `--busy-events` usage events (1,000,000)
over it. Then serves Tollgate in sandbox mode with bench/run.py's gunicorn settings, logs in as
that customer, and asks /account, /pricing and the baseline /healthz in turn, `--requests`
times (200) after `--warm-up` (5) unmeasured. It prints per page the status, the SQL statements
it ran (counted in the served process, bench/backoffice_wsgi.py), p50, p95, max, and p95 over
the baseline's. Figures, not pass/fail: see bench/README.md. The target: p95 under 30 ms each.
That the query counts stay fixed as the data grows is held by tests/billing/test_query_counts.py.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# The root goes on the path first.
from bench.backoffice_volume import CSRF_INPUT, fill_reporting, measure, percentile  # noqa: E402
from bench.run import GUNICORN, arguments, database, gunicorn  # noqa: E402

BASELINE = "/healthz"
PAGES = ("/account", "/pricing")
TARGET_MS = 30.0


def prepare(env: dict[str, str], customers: int, usage_events: int, busy_events: int) -> None:
    """Migrate the database and fill it, the busy customer last."""
    os.environ.update(env)
    import flask_migrate

    from app import create_app
    from app.extensions import db
    from bench.volume_data import Volume, fill, fill_busy_customer

    app = create_app()
    with app.app_context():
        flask_migrate.upgrade()

        def fill_all(report: Callable[[str, int, float], None]) -> None:
            fill(Volume(customers=customers, usage_events=usage_events), report)
            fill_busy_customer(busy_events, report=report)

        fill_reporting(fill_all)
        db.session.remove()
        db.engine.dispose()


def log_in(client: httpx.Client, email: str, password: str) -> None:
    """Log in through the log-in form."""
    token = CSRF_INPUT.search(client.get("/login").text)
    assert token, "no CSRF token on /login"
    response = client.post(
        "/login", data={"csrf_token": token.group(1), "email": email, "password": password}
    )
    assert response.status_code == 302, response.text


def main() -> None:
    parser = arguments(__doc__.split("\n\n")[0])
    parser.set_defaults(db="postgresql")
    parser.add_argument("--usage-events", type=int, default=200_000)
    parser.add_argument("--busy-events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warm-up", type=int, default=5)
    args = parser.parse_args()

    from bench.volume_data import BUSY_EMAIL, BUSY_PASSWORD

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with database(args.db, args.postgres_url, workdir) as database_url:
            env = {
                "TOLLGATE_INSTANCE_PATH": str(workdir / "instance"),
                "DATABASE_URL": database_url,
                "SECRET_KEY": "bench",
                "STRIPE_SECRET_KEY": "",  # the sandbox: neither page calls Stripe anyway
                "LOG_LEVEL": "WARNING",
            }
            print(
                f"# {args.db}: filling {args.customers:,} customers with "
                f"{args.usage_events:,} usage events, and one with {args.busy_events:,}",
                flush=True,
            )
            prepare(env, args.customers, args.usage_events, args.busy_events)
            paths = [BASELINE, *PAGES]
            with (
                gunicorn("bench.backoffice_wsgi:app", env, options=GUNICORN) as base,
                httpx.Client(base_url=base, timeout=60, follow_redirects=False) as client,
            ):
                log_in(client, BUSY_EMAIL, BUSY_PASSWORD)
                measure(client, paths, args.warm_up)
                results = measure(client, paths, args.requests)
            print_table(args.requests, args.warm_up, results)


def print_table(
    requests: int, warm_up: int, results: dict[str, tuple[list[float], int, int]]
) -> None:
    """One line per page, the baseline first."""
    base_p95 = percentile(results[BASELINE][0], 0.95)
    print(
        f"# gunicorn {' '.join(GUNICORN)}; the busy customer, logged in, asking each page in "
        f"turn, {requests} times after {warm_up} unmeasured; times in ms"
    )
    columns = ("status", 6), ("queries", 7), ("p50", 8), ("p95", 8), ("max", 8), ("p95/base", 9)
    print(f"{'page':<20}" + "".join(f" {name:>{width}}" for name, width in columns))
    over = []
    for label, path in [(f"baseline: {BASELINE}", BASELINE), *((page, page) for page in PAGES)]:
        latencies, status, queries = results[path]
        p95 = percentile(latencies, 0.95)
        if path != BASELINE and p95 >= TARGET_MS:
            over.append(path)
        print(
            f"{label:<20} {status:>6} {queries:>7} {statistics.median(latencies):>8.1f} "
            f"{p95:>8.1f} {max(latencies):>8.1f} {p95 / base_p95:>8.1f}x"
        )
    print(f"# pages at or over the target p95 of {TARGET_MS:.0f} ms: {', '.join(over) or 'none'}")


if __name__ == "__main__":
    main()
