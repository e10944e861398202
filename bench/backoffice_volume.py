"""The back office's pages over a real volume of data, each timed beside a trivial endpoint.

    .venv/bin/python bench/backoffice_volume.py
    .venv/bin/python bench/backoffice_volume.py --db sqlite --customers 2000 --requests 20

Fills a fresh database (PostgreSQL by default, one of the run's own; see bench/run.py) with
`--customers` customers (10,000) and two years of their billing, `--usage-events` usage events
(1,000,000) with credit pools and ledger, webhook events and audit entries (bench/volume_data.py),
printing how long each part took. Then serves Tollgate in sandbox mode with bench/run.py's
gunicorn settings, logs in as an operator, finds every GET page of the back office in the URL
map (bench/admin_pages.py: a customer's pages for the busiest customer, a failed webhook
event's page, ...), warms each up, and asks each `--requests` times (50), the pages taken in
turn so the machine's drift falls on all alike. It prints per page the status, the SQL
statements it ran (counted in the served process, bench/backoffice_wsgi.py), p50, p95, max,
and p95 over the baseline's (/healthz, asked in the same turns). Figures, not pass/fail: see
bench/README.md. The target: every page's p95 under 300 ms.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.run import GUNICORN, database, gunicorn  # noqa: E402 (the root goes on the path first)

CSRF_INPUT = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
BASELINE = "/healthz"
TARGET_MS = 300.0


def report_part(part: str, rows: int, seconds: float) -> None:
    """Print how long one part of a fill took."""
    print(f"  {part:<68} {rows:>10,} rows {seconds:7.1f} s", flush=True)


def fill_reporting(fill: Callable[[Callable[[str, int, float], None]], None]) -> None:
    """Run ``fill`` (given report_part), then print how long it took in all."""
    started = time.perf_counter()
    fill(report_part)
    print(f"  {'filled in':<68} {'':>15} {time.perf_counter() - started:7.1f} s")


def prepare(env: dict[str, str], customers: int, usage_events: int) -> list[tuple[str, str]]:
    """Migrate and fill the database; returns each back-office page as (rule, path)."""
    os.environ.update(env)
    import flask_migrate

    from app import create_app
    from app.extensions import db
    from bench.admin_pages import backoffice_rules, page_path, sample_values
    from bench.volume_data import Volume, fill

    app = create_app()
    with app.app_context():
        flask_migrate.upgrade()
        fill_reporting(
            lambda report: fill(Volume(customers=customers, usage_events=usage_events), report)
        )
        values = sample_values()
        pages = [(rule.rule, page_path(app, rule, values)) for rule in backoffice_rules(app)]
        db.session.remove()
        db.engine.dispose()
    return pages


def log_in(client: httpx.Client) -> None:
    """Log in as the fill's first operator, through the log-in form."""
    from bench.volume_data import OPERATOR_PASSWORD, OPERATORS

    token = CSRF_INPUT.search(client.get("/login").text)
    assert token, "no CSRF token on /login"
    response = client.post(
        "/login",
        data={"csrf_token": token.group(1), "email": OPERATORS[0], "password": OPERATOR_PASSWORD},
    )
    assert response.status_code == 302, response.text


def measure(
    client: httpx.Client, paths: list[str], requests: int
) -> dict[str, tuple[list[float], int, int]]:
    """Each path asked ``requests`` times, in turn: (latencies in ms, last status, queries)."""
    results: dict[str, tuple[list[float], int, int]] = {path: ([], 0, 0) for path in paths}
    for _ in range(requests):
        for path in paths:
            started = time.perf_counter()
            response = client.get(path)
            elapsed = (time.perf_counter() - started) * 1000
            latencies, _, _ = results[path]
            latencies.append(elapsed)
            queries = int(response.headers.get("X-Bench-Queries", "-1"))
            results[path] = (latencies, response.status_code, queries)
    return results


def percentile(values: list[float], share: float) -> float:
    """The value below which ``share`` of ``values`` fall (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--postgres-url", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--usage-events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--warm-up", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with database(args.db, args.postgres_url, workdir) as database_url:
            env = {
                "TOLLGATE_INSTANCE_PATH": str(workdir / "instance"),
                "DATABASE_URL": database_url,
                "SECRET_KEY": "bench",
                "STRIPE_SECRET_KEY": "",  # the sandbox: no page may call Stripe on load anyway
                "LOG_LEVEL": "WARNING",
            }
            print(f"# {args.db}: filling {args.customers:,} customers", flush=True)
            pages = prepare(env, args.customers, args.usage_events)
            paths = [BASELINE, *(path for _, path in pages)]
            with (
                gunicorn("bench.backoffice_wsgi:app", env, options=GUNICORN) as base,
                httpx.Client(base_url=base, timeout=60, follow_redirects=False) as client,
            ):
                log_in(client)
                measure(client, paths, args.warm_up)
                results = measure(client, paths, args.requests)
            print_table(args, pages, results)


def print_table(
    args: argparse.Namespace,
    pages: list[tuple[str, str]],
    results: dict[str, tuple[list[float], int, int]],
) -> None:
    """One line per page, the baseline first."""
    base_p95 = percentile(results[BASELINE][0], 0.95)
    print(
        f"# gunicorn {' '.join(GUNICORN)}; one logged-in operator asking each page in turn, "
        f"{args.requests} times after {args.warm_up} unmeasured; times in ms"
    )
    columns = ("status", 6), ("queries", 7), ("p50", 8), ("p95", 8), ("max", 8), ("p95/base", 9)
    print(f"{'page':<44}" + "".join(f" {name:>{width}}" for name, width in columns))
    over = []
    for rule, path in [("baseline: " + BASELINE, BASELINE), *pages]:
        latencies, status, queries = results[path]
        p95 = percentile(latencies, 0.95)
        if path != BASELINE and p95 >= TARGET_MS:
            over.append(rule)
        print(
            f"{rule:<44} {status:>6} {queries:>7} {statistics.median(latencies):>8.1f} "
            f"{p95:>8.1f} {max(latencies):>8.1f} {p95 / base_p95:>8.1f}x"
        )
    verdict = ", ".join(over) if over else "none"
    print(f"# pages at or over the target p95 of {TARGET_MS:.0f} ms: {verdict}")


if __name__ == "__main__":
    main()
