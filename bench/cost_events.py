"""What pricing usage events' costInput costs the event path, over HTTP against gunicorn.

    .venv/bin/python bench/cost_events.py --db sqlite
    .venv/bin/python bench/cost_events.py --db postgresql --postgres-url postgresql://postgres@127.0.0.1/postgres

Sets up as bench/run.py does (its helpers, imported: a fresh database, customers on an active Pro
subscription, an API key, Tollgate served by gunicorn with the same settings) and drives
`POST /api/v1/client/events` and `/events/batch` with wrk running bench/load_cost.lua: usage
events of the metered feature `ai_chat`, one per request and in batches of 1,000, each workload
without and with a costInput (gpt-4o/openai, claude-sonnet-4-5/anthropic or
gemini-2.5-flash/google at random, random token counts). Both variants send the same customers
and usageUnits; the costInput is the only difference. The two variants of a workload are taken in
turn, `--runs` times, and the median is printed: events/s, p50, p99, errors (requests wrk counted
as failed, 4xx among them), events a batch refused in its answer, and the ratio of events/s with
costInput to without. The target: 0.90 or more (pricing costs the event path at most 10%).
Figures, not pass/fail. A line before them times genai-prices' calc_price alone, in this process.

Pro allows 5,000,000 ai_chat tokens per customer and period: with far fewer customers than the
default 10,000, later runs can reach it and have events refused (the `rejected` column).
"""

from __future__ import annotations

import random
import re
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import cast

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.run import (  # noqa: E402 (the repository's root goes on the path first)
    BATCH_SETTLE_SECONDS,
    GUNICORN,
    WRK,
    WRK_CONNECTIONS,
    Result,
    arguments,
    database,
    gunicorn,
    in_turn,
    seed,
    wrk,
)

# The models bench/load_cost.lua names, each with its provider; all known to genai-prices.
MODELS = [("gpt-4o", "openai"), ("claude-sonnet-4-5", "anthropic"), ("gemini-2.5-flash", "google")]
BATCH_CONNECTIONS = 4  # as bench/run.py's batches
WARM_UP_SECONDS = 2.0
PRICED_ALONE = 10_000


@dataclass
class CostResult(Result):
    """What one wrk run measured, and how many events batches answered as refused."""

    rejected: int = 0


def run_cost_wrk(
    base_url: str,
    mode: str,
    *,
    key: str,
    customers: int,
    seconds: float,
    connections: int = WRK_CONNECTIONS,
) -> CostResult:
    """Send bench/load_cost.lua's requests (``mode``: event, event_cost, batch or batch_cost)
    with wrk, one thread, as fast as the server answers."""
    settings = {
        "TOLLGATE_BENCH_MODE": mode,
        "TOLLGATE_BENCH_KEY": key,
        "TOLLGATE_BENCH_CUSTOMERS": str(customers),
    }
    output = wrk(
        base_url, "bench/load_cost.lua", settings, seconds=seconds, connections=connections
    )
    found = re.search(
        r"TOLLGATE_BENCH requests=(\d+) duration_us=(\d+) errors=(\d+) p50_us=(\d+) "
        r"p99_us=(\d+) rejected=(\d+)",
        output,
    )
    if found is None:
        raise SystemExit(f"wrk printed no figures:\n{output}")
    requests, duration, errors, p50, p99, rejected = (int(value) for value in found.groups())
    if mode.startswith("batch"):
        # Let the batches sent last finish, so that they do not slow the next run down.
        time.sleep(BATCH_SETTLE_SECONDS)
    return CostResult(requests, errors, duration / 1e6, p50 / 1000, p99 / 1000, rejected)


def priced_alone(samples: int = PRICED_ALONE) -> float:
    """Microseconds genai-prices' calc_price takes per event like bench/load_cost.lua's, in this
    process: what pricing adds to each event's CPU if nothing else changes."""
    from genai_prices import Usage, calc_price

    draw = random.Random(0)  # noqa: S311 (token counts, not secrets)
    usages = []
    for _ in range(samples):
        model, provider = draw.choice(MODELS)
        input_tokens = draw.randint(100, 4000)
        usage = Usage(
            input_tokens=input_tokens,
            output_tokens=draw.randint(20, 1500),
            cache_read_tokens=draw.randint(0, input_tokens // 2),
        )
        usages.append((usage, model, provider))
    for model, provider in MODELS:  # the first call loads the prices
        calc_price(Usage(input_tokens=1, output_tokens=1), model, provider_id=provider)
    started = time.perf_counter()
    for usage, model, provider in usages:
        calc_price(usage, model, provider_id=provider)
    return (time.perf_counter() - started) / samples * 1e6


def median_of(results: list[Result]) -> tuple[CostResult, CostResult]:
    """in_turn's medians of run_cost_wrk's runs, without and with costInput."""
    without, with_cost = cast(list[CostResult], results)
    return without, with_cost


def line(name: str, result: CostResult, without: CostResult | None, per: int = 1) -> str:
    rate = result.rate * per
    ratio = f"with/without {rate / (without.rate * per):5.3f}" if without else "baseline"
    return (
        f"{name:<50} {rate:8.0f} events/s  p50 {result.p50:7.2f} ms  p99 {result.p99:7.2f} ms  "
        f"errors {result.errors:<4} rejected {result.rejected:<6} {ratio}"
    )


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument(
        "--warm-up", type=float, default=WARM_UP_SECONDS, help="unmeasured, per workload"
    )
    args = parser.parse_args()
    if WRK is None:
        raise SystemExit("bench/cost_events.py drives the load with wrk: apt install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
    try:
        with ExitStack() as stack:
            url = stack.enter_context(database(args.db, args.postgres_url, workdir))
            env = {  # as bench/run.py's
                "DATABASE_URL": url,
                "SECRET_KEY": "bench",
                "TOLLGATE_INSTANCE_PATH": str(workdir),
                "STRIPE_SECRET_KEY": "sk_test_bench_not_used",
                "STRIPE_WEBHOOK_SECRET": "whsec_bench_not_used",
            }
            started = time.perf_counter()
            key = seed(env, args.customers)
            loaded = time.perf_counter() - started
            print(f"# {args.db}: {args.customers:,} customers loaded in {loaded:.1f} s")
            # Before the servers start, so that nothing else wants the core.
            alone = priced_alone()
            tollgate = stack.enter_context(gunicorn("wsgi:app", env))
            load = partial(
                run_cost_wrk, tollgate, key=key, customers=args.customers, seconds=args.seconds
            )
            batch = partial(load, connections=BATCH_CONNECTIONS)
            print(
                f"# gunicorn {' '.join(GUNICORN)}; load: wrk, 1 thread, {WRK_CONNECTIONS} "
                f"connections (batches: {BATCH_CONNECTIONS}, each on a new one); median of "
                f"{args.runs} runs of {args.seconds:g} s, without and with costInput taken in "
                f"turn, after {args.warm_up:g} s of each unmeasured"
            )
            print(
                "# feature ai_chat, usageUnits = input + output tokens; costInput: "
                + ", ".join(f"{model}/{provider}" for model, provider in MODELS)
                + " at random, 100-4,000 input tokens (up to half cached), 20-1,500 output"
            )
            print(
                f"# genai-prices {version('genai-prices')}: calc_price alone takes "
                f"{alone:.1f} us per event in this process (one core)"
            )
            for mode in ("event", "event_cost"):
                load(mode, seconds=args.warm_up)
            for mode in ("batch", "batch_cost"):
                batch(mode, seconds=args.warm_up)
            single, single_cost = median_of(
                in_turn(args.runs, partial(load, "event"), partial(load, "event_cost"))
            )
            print(line("usage events, one per request, without costInput", single, None))
            print(line("usage events, one per request, with costInput", single_cost, single))
            batched, batched_cost = median_of(
                in_turn(args.runs, partial(batch, "batch"), partial(batch, "batch_cost"))
            )
            print(line("usage events, batches of 1,000, without costInput", batched, None, 1000))
            print(
                line("usage events, batches of 1,000, with costInput", batched_cost, batched, 1000)
            )
            print("# target: with/without 0.90 or more on each workload")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
