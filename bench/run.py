"""Entitlement checks and usage ingestion over HTTP against gunicorn, next to a bare Flask baseline.

    .venv/bin/python bench/run.py --db sqlite
    .venv/bin/python bench/run.py --db postgresql --postgres-url postgresql://postgres@127.0.0.1/postgres

Loads N customers on an active Pro subscription, serves Tollgate, bench/bare.py and
bench/floor.py with the same gunicorn configuration, and prints requests/s, events/s, p50 and
p99 latency, and each figure's ratio to the bare endpoint measured in the same run. The floor's
lines show what the database alone costs: one indexed read per check, one INSERT per batch.
Figures, not pass/fail: see bench/README.md.
The load comes from wrk (`apt install wrk`) running bench/load.lua.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WRK = shutil.which("wrk")
WRK_CONNECTIONS = 16
BATCH_SETTLE_SECONDS = 3.0
# Before the checks are measured, each server answers them unmeasured, as a running deployment
# has: Tollgate until its workers answer nearly every check from their caches (WARM_HITS of a
# WARM_STEP_SECONDS step, by its /metrics), or for WARM_UP_LIMIT_SECONDS at most; the others
# for WARM_UP_SECONDS. Each worker has a cache of its own and reads each customer once, so with
# 10,000 customers a fixed 10 s left a third of the checks reading the database on this
# machine. The cache's cold start is what the "cache off" line shows.
WARM_UP_SECONDS = 10.0
WARM_STEP_SECONDS = 2.0
WARM_HITS = 0.98
WARM_UP_LIMIT_SECONDS = 90.0
# Tollgate's servers (their base URLs) with their /metrics, for the warm-up.
METRICS_OF: dict[str, str] = {}

GUNICORN = [
    "-w",
    "2",
    "-k",
    "gthread",
    "--threads",
    "4",
    # wrk keeps 16 connections open. Without a cap, the worker that wakes first can accept
    # nearly all of them and a run measures one core, not two. The cap must leave room to keep
    # them alive, though: gthread keeps at most worker-connections minus threads idle, and
    # closes the rest after each answer. With a cap of 8, paced runs reconnected all the time
    # and the bare endpoint's p99 was 13-29 ms; with 12 (8 idle + 4 busy), 5-12 ms.
    "--worker-connections",
    "12",
    "--keep-alive",
    "30",
    "--log-level",
    "warning",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gunicorn(
    app: str, env: dict[str, str], port: int | None = None, options: list[str] | None = None
) -> Iterator[str]:
    """Serve ``app`` with the shared gunicorn configuration (or ``options``), on ``port`` or a
    free one; yields its base URL."""
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    if app == "wsgi:app" and env.get("TOLLGATE_CHECK_CACHE") != "off":
        metrics = f"127.0.0.1:{free_port()}"
        env = {**env, "METRICS_BIND": metrics}
        METRICS_OF[base] = f"http://{metrics}/metrics"
    process = subprocess.Popen(  # noqa: S603 (our own gunicorn, our own arguments)
        [
            str(REPO / ".venv/bin/gunicorn"),
            *(options or GUNICORN),
            "-b",
            f"127.0.0.1:{port}",
            app,
        ],
        cwd=REPO,
        env={**os.environ, **env},
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/api/v1/client/entitlements/x/y", timeout=1)  # noqa: S310
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
        METRICS_OF.pop(base, None)


@contextmanager
def database(kind: str, postgres_url: str | None, workdir: Path) -> Iterator[str]:
    """A fresh database for the run."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'bench.sqlite3'}"
        return
    from tests.databases import postgres_database

    with postgres_database(
        postgres_url or "postgresql://postgres@127.0.0.1:5432/postgres", "bench"
    ) as url:
        yield url


def seed(env: dict[str, str], customers: int) -> str:
    """Migrate, load ``customers`` customers on an active Pro subscription; returns an API key."""
    os.environ.update(env)
    import flask_migrate
    from sqlalchemy import insert, select

    from app import create_app
    from app.api.keys import create_key
    from app.extensions import db
    from app.models import Customer, Subscription, SubscriptionStatus

    app = create_app()
    with app.app_context():
        flask_migrate.upgrade()
        now = datetime.now(UTC)
        db.session.execute(
            insert(Customer),
            [
                {"reference_id": f"bench-{n}", "email": f"bench{n}@example.com", "created_at": now}
                for n in range(customers)
            ],
        )
        ids = db.session.scalars(select(Customer.id).order_by(Customer.id)).all()
        db.session.execute(
            insert(Subscription),
            [
                {
                    "stripe_subscription_id": f"sub_bench_{customer_id}",
                    "customer_id": customer_id,
                    "plan_key": "pro_monthly",
                    "stripe_price_id": "price_bench",
                    "status": SubscriptionStatus.ACTIVE,
                    "current_period_start": now - timedelta(days=1),
                    "current_period_end": now + timedelta(days=29),
                    "cancel_at_period_end": False,
                    "stripe_created": now,
                    "created_at": now,
                    "updated_at": now,
                }
                for customer_id in ids
            ],
        )
        _, key = create_key("bench")
        db.session.commit()
        db.engine.dispose()
    return key


@dataclass
class Result:
    """What one wrk run measured."""

    requests: int
    errors: int
    seconds: float
    p50: float  # ms
    p99: float  # ms

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def wrk(
    base_url: str,
    script: str,
    settings: dict[str, str],
    *,
    seconds: float,
    connections: int,
    threads: int = 1,
) -> str:
    """What wrk prints running ``script`` (on ``threads`` threads) with ``settings`` in its
    environment, and a run name of its own."""
    env = {**os.environ, **settings, "TOLLGATE_BENCH_RUN": f"{script}-{time.time_ns()}"}
    return subprocess.run(  # noqa: S603 (wrk with our own arguments)
        [
            WRK or "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--timeout",
            "30s",
            "-s",
            str(REPO / script),
            base_url,
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def run_wrk(
    base_url: str,
    mode: str,
    *,
    key: str,
    customers: int,
    seconds: float,
    connections: int = WRK_CONNECTIONS,
    rate: float | None = None,
    first: int = 0,
) -> Result:
    """Send bench/load.lua's requests with wrk: as fast as the server answers, or paced at
    ``rate`` requests/s in total; to customers ``first`` to ``first + customers - 1``.

    wrk runs one thread, except in the loop: there each connection gets a thread (and so a Lua
    state) of its own, so that its check and the unit it then records go out one after the
    other, on the same connection, for the same customer."""
    env = {
        "TOLLGATE_BENCH_MODE": mode,
        "TOLLGATE_BENCH_KEY": key,
        "TOLLGATE_BENCH_CUSTOMERS": str(customers),
        "TOLLGATE_BENCH_FIRST": str(first),
        "TOLLGATE_BENCH_CONNECTIONS": str(connections),
    }
    if rate:
        env["TOLLGATE_BENCH_RATE"] = str(rate)
    output = wrk(
        base_url,
        "bench/load.lua",
        env,
        seconds=seconds,
        connections=connections,
        threads=connections if mode == "loop" else 1,
    )
    found = re.search(
        r"TOLLGATE_BENCH requests=(\d+) duration_us=(\d+) errors=(\d+) p50_us=(\d+) p99_us=(\d+)",
        output,
    )
    if found is None:
        raise SystemExit(f"wrk printed no figures:\n{output}")
    requests, duration, errors, p50, p99 = (int(value) for value in found.groups())
    if mode == "batch":
        # wrk stops sending at the deadline, but the batches it sent last are still being
        # recorded: let them finish, so that they do not slow the next run down.
        time.sleep(BATCH_SETTLE_SECONDS)
    return Result(requests, errors, duration / 1e6, p50 / 1000, p99 / 1000)


def paced(load: Callable[..., Result], base_url: str, target: float) -> Result:
    """Entitlement checks at ``target`` requests/s. wrk waits between a connection's answer and
    its next request, so a run falls short of its rate by the answers' own time: when it does
    by more than 5%, it runs once more asking for as much more as was missing."""
    result = load(base_url, "check", rate=target)
    if result.rate < 0.95 * target:
        result = load(base_url, "check", rate=target * target / result.rate)
    return result


def in_turn(runs: int, *measurements: Callable[[], Result]) -> list[Result]:
    """Each measurement ``runs`` times, taking them in turn so that the machine's drift falls
    on all alike; for each, the run with the median rate."""
    results: list[list[Result]] = [[] for _ in measurements]
    for _ in range(runs):
        for taken, measure in zip(results, measurements, strict=True):
            taken.append(measure())
    return [sorted(taken, key=lambda result: result.rate)[len(taken) // 2] for taken in results]


def line(
    name: str,
    result: Result,
    baseline: Result | None,
    unit: str = "req/s",
    per: int = 1,
    of: str = "bare",
) -> str:
    rate = result.rate * per
    ratio = f"{rate / (baseline.rate * per):6.1%} of {of}" if baseline else "baseline"
    return (
        f"{name:<44} {rate:10.0f} {unit:<9} p50 {result.p50:7.2f} ms  p99 {result.p99:7.2f} ms  "
        f"errors {result.errors:<4} {ratio}"
    )


def arguments(description: str | None) -> argparse.ArgumentParser:
    """The options every HTTP benchmark here takes: the database, customers, seconds, runs."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--postgres-url", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--runs", type=int, default=3, help="runs of each measurement; the median is printed"
    )
    return parser


# What --only picks from; a run without it measures them all, in this order.
SECTIONS = ("checks", "events", "loop", "workers", "mixed")

# The worker kinds the check is measured under (the "workers" lines): each app served by each,
# the command line's settings winning over gunicorn.conf.py's, which gunicorn reads from the
# folder it starts in whatever it serves.
WORKER_KINDS = {
    "bench's gthread": GUNICORN,
    # Production exactly, only bound elsewhere (the Procfile's web process).
    "gunicorn.conf.py": ["--config", "gunicorn.conf.py"],
    # What `gunicorn -w 4 wsgi:app` gives in this folder: gunicorn.conf.py's 16 gthread threads.
    "-w 4": ["-w", "4"],
    # Sync workers: gunicorn runs gthread instead of sync whenever threads > 1, so plain sync
    # workers need gunicorn.conf.py's 16 threads undone.
    "-w 4 -k sync --threads 1": ["-w", "4", "-k", "sync", "--threads", "1"],
}
# Batches at once with the checks, on the customers the checks do not ask about ("mixed").
MIXED_BATCH_CONNECTIONS = 4


@dataclass
class Bench:
    """What every section needs: the environment, the load, and servers warmed once."""

    env: dict[str, str]
    load: Callable[..., Result]
    runs: int
    customers: int
    warmed: set[str]

    def warm(self, *servers: str, customers: int | None = None) -> None:
        """Let each server answer checks unmeasured, once: Tollgate until its caches answer
        nearly all of them (printed), the others for WARM_UP_SECONDS."""
        warm = partial(self.load, customers=customers or self.customers)
        for base in servers:
            if base in self.warmed:
                continue
            self.warmed.add(base)
            metrics = METRICS_OF.get(base)
            if metrics is None:
                warm(base, "check", seconds=WARM_UP_SECONDS)
                continue
            started, hits = time.perf_counter(), 0.0
            while hits < WARM_HITS and time.perf_counter() - started < WARM_UP_LIMIT_SECONDS:
                before = cache_lookups(metrics)
                warm(base, "check", seconds=WARM_STEP_SECONDS)
                hits = share_of_hits(before, cache_lookups(metrics))
            print(
                f"# Tollgate at {base} warmed for {time.perf_counter() - started:.0f} s: "
                f"{hits:.1%} of its last checks came from its caches"
            )


def cache_lookups(metrics: str) -> dict[str, float]:
    """The check caches' lookups so far, all workers', by result (hit, miss)."""
    with urllib.request.urlopen(metrics, timeout=5) as answer:  # noqa: S310 (our own server)
        text = answer.read().decode()
    found = re.findall(r'^tollgate_check_cache_lookups_total\{result="(\w+)"\} (\S+)$', text, re.M)
    return {result: float(count) for result, count in found}


def share_of_hits(before: dict[str, float], after: dict[str, float]) -> float:
    """The share of the lookups between two readings that were hits."""
    hits = after.get("hit", 0) - before.get("hit", 0)
    misses = after.get("miss", 0) - before.get("miss", 0)
    return hits / (hits + misses) if hits + misses else 0.0


def measure_checks(bench: Bench, bare: str, floor: str, tollgate: str, uncached: str) -> None:
    """Checks at peak and paced at half of it, next to the bare endpoint and the floor."""
    bench.warm(bare, floor, tollgate, uncached)
    bare_peak, shell_peak, floor_peak, check_peak, uncached_peak = in_turn(
        bench.runs,
        partial(bench.load, bare, "check"),
        partial(bench.load, tollgate, "healthz"),
        *(partial(bench.load, base, "check") for base in (floor, tollgate, uncached)),
    )
    print(line("bare JSON endpoint, peak", bare_peak, None))
    print(line("Tollgate's /healthz: its request hooks alone", shell_peak, bare_peak))
    print(line("floor: bare + one indexed read, peak", floor_peak, bare_peak))
    print(line("entitlement check, peak", check_peak, bare_peak))
    print(line("entitlement check, cache off, peak", uncached_peak, bare_peak))
    half = check_peak.rate / 2
    bare_half, floor_half, check_half = in_turn(
        bench.runs,
        lambda: paced(bench.load, bare, half),
        lambda: paced(bench.load, floor, half),
        lambda: paced(bench.load, tollgate, half),
    )
    print(line("bare JSON endpoint, paced at half of check peak", bare_half, None))
    print(line("floor, paced at half of check peak", floor_half, bare_half))
    print(line("entitlement check, paced at half of its peak", check_half, bare_half))


def measure_events(bench: Bench, bare: str, floor: str, tollgate: str) -> None:
    """Usage events one per request, and in batches of 1,000."""
    bare_events, floor_single, single = in_turn(
        bench.runs,
        lambda: bench.load(bare, "event"),
        lambda: bench.load(floor, "event"),
        lambda: bench.load(tollgate, "event"),
    )
    print(line("bare JSON POST, peak", bare_events, None))
    print(line("floor: one event per request and commit", floor_single, bare_events, "events/s"))
    print(line("usage events, one per request", single, bare_events, "events/s"))
    floor_batched, batched = in_turn(
        bench.runs,
        lambda: bench.load(floor, "batch", connections=MIXED_BATCH_CONNECTIONS),
        lambda: bench.load(tollgate, "batch", connections=MIXED_BATCH_CONNECTIONS),
    )
    print(
        line(
            "floor: batches written in one INSERT", floor_batched, bare_events, "events/s", per=1000
        )
    )
    print(line("usage events, batches of 1,000", batched, bare_events, "events/s", per=1000))


def measure_loop(bench: Bench, bare: str, tollgate: str) -> None:
    """A check, then one unit recorded for the same customer, on each connection in turn."""
    bare_loop, loop = in_turn(
        bench.runs, lambda: bench.load(bare, "loop"), lambda: bench.load(tollgate, "loop")
    )
    print(line("bare: GET then POST, same customer, peak", bare_loop, None))
    print(line("the loop: check, then record 1 unit", loop, bare_loop))


def measure_worker_kinds(bench: Bench) -> None:
    """The check, Tollgate and bare each served by each of WORKER_KINDS; each check's ratio to
    bare under the same kind and to Tollgate's best kind."""
    measured: dict[str, tuple[Result, Result]] = {}
    for kind, options in WORKER_KINDS.items():
        with ExitStack() as stack:
            bare = stack.enter_context(gunicorn("bench.bare:app", bench.env, options=options))
            tollgate = stack.enter_context(gunicorn("wsgi:app", bench.env, options=options))
            bench.warm(bare, tollgate)
            bare_peak, check_peak = in_turn(
                bench.runs,
                partial(bench.load, bare, "check"),
                partial(bench.load, tollgate, "check"),
            )
        measured[kind] = (bare_peak, check_peak)
    best = max((check for _, check in measured.values()), key=lambda result: result.rate)
    for kind, (bare_peak, check_peak) in measured.items():
        print(line(f"bare JSON endpoint, {kind}", bare_peak, None))
        print(
            line(f"entitlement check, {kind}", check_peak, bare_peak)
            + f" {check_peak.rate / best.rate:6.1%} of best"
        )


def measure_mixed(bench: Bench, bare: str, tollgate: str) -> None:
    """Checks on the first half of the customers while batches of 1,000 arrive for the second
    half, from two wrk at once; against the bare endpoint given the same checks alone, and
    Tollgate given the same batches alone."""
    half = bench.customers // 2
    checks = partial(bench.load, customers=half)
    batches = partial(
        bench.load,
        tollgate,
        "batch",
        connections=MIXED_BATCH_CONNECTIONS,
        customers=bench.customers - half,
        first=half,
    )
    bench.warm(bare, tollgate, customers=half)
    batched_meanwhile: list[Result] = []

    def checks_during_batches() -> Result:
        with ThreadPoolExecutor(1) as other:
            batched = other.submit(batches)
            checked = checks(tollgate, "check")
            batched_meanwhile.append(batched.result())
        return checked

    bare_alone, batched_alone, mixed = in_turn(
        bench.runs, partial(checks, bare, "check"), batches, checks_during_batches
    )
    batched = sorted(batched_meanwhile, key=lambda result: result.rate)[len(batched_meanwhile) // 2]
    print(line("bare JSON endpoint, checks alone", bare_alone, None))
    print(line("mixed: checks while batches arrive", mixed, bare_alone))
    print(line("usage events, batches of 1,000 alone", batched_alone, None, "events/s", per=1000))
    print(
        line(
            "mixed: batches while checks go on",
            batched,
            batched_alone,
            "events/s",
            per=1000,
            of="alone",
        )
    )


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"the sections to run, of {','.join(SECTIONS)} (all by default)",
    )
    args = parser.parse_args()
    sections = args.only.split(",")
    if unknown := set(sections) - set(SECTIONS):
        parser.error(f"--only: no section {', '.join(sorted(unknown))}; of {','.join(SECTIONS)}")
    if WRK is None:
        raise SystemExit("bench/run.py drives the load with wrk: apt install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
    try:
        with ExitStack() as stack:
            url = stack.enter_context(database(args.db, args.postgres_url, workdir))
            env = {
                "DATABASE_URL": url,
                "SECRET_KEY": "bench",
                "TOLLGATE_INSTANCE_PATH": str(workdir),
                # As deployed: with Stripe keys, so the one clock is the system's, not the
                # sandbox's (the measured calls never reach Stripe).
                "STRIPE_SECRET_KEY": "sk_test_bench_not_used",
                "STRIPE_WEBHOOK_SECRET": "whsec_bench_not_used",
            }
            started = time.perf_counter()
            key = seed(env, args.customers)
            loaded = time.perf_counter() - started
            print(f"# {args.db}: {args.customers:,} customers loaded in {loaded:.1f} s")
            bare = stack.enter_context(gunicorn("bench.bare:app", env))
            floor = stack.enter_context(gunicorn("bench.floor:app", env))
            tollgate = stack.enter_context(gunicorn("wsgi:app", env))
            # Checks come from each worker's cache (app/entitlements/fastpath/): the same
            # app with it off shows what each check's read costs.
            uncached = stack.enter_context(
                gunicorn("wsgi:app", {**env, "TOLLGATE_CHECK_CACHE": "off"})
            )
            load = partial(run_wrk, key=key, customers=args.customers, seconds=args.seconds)
            bench = Bench(env, load, args.runs, args.customers, warmed=set())
            print(
                f"# gunicorn {' '.join(GUNICORN)}; "
                f"load: wrk, 1 thread, {WRK_CONNECTIONS} connections; "
                f"median of {args.runs} runs of {args.seconds:g} s, taken in turn; "
                f"checks after a warm-up: Tollgate's until {WARM_HITS:.0%} of them come from "
                f"its caches (at most {WARM_UP_LIMIT_SECONDS:g} s), the others' "
                f"{WARM_UP_SECONDS:g} s"
            )
            if "checks" in sections:
                measure_checks(bench, bare, floor, tollgate, uncached)
            if "events" in sections:
                measure_events(bench, bare, floor, tollgate)
            if "loop" in sections:
                print(f"# the loop: wrk, {WRK_CONNECTIONS} threads of 1 connection each")
                measure_loop(bench, bare, tollgate)
            if "workers" in sections:
                print(
                    "# worker kinds: each app served by each, the command line's settings over "
                    "gunicorn.conf.py's; checks after its own warm-up"
                )
                measure_worker_kinds(bench)
            if "mixed" in sections:
                print(
                    f"# mixed: checks on customers 0-{args.customers // 2 - 1} while "
                    f"{MIXED_BATCH_CONNECTIONS} connections send batches for the rest"
                )
                measure_mixed(bench, bare, tollgate)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
