"""Prometheus metrics: what each process counts, and the text a scrape answers.

Under gunicorn each worker is a process of its own. With ``PROMETHEUS_MULTIPROC_DIR`` set
(gunicorn.conf.py sets it), every process, the Huey worker's included, writes its counts to
files there and a scrape sums them all (prometheus_client's multiprocess mode); without it,
a scrape answers this process's counts. Figures read from the database at scrape time are
collectors that the caller of ``exposition`` passes in (app/health.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

from flask import Flask, g, request
from huey import Huey
from huey import signals as huey_signals
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from werkzeug.wrappers import Response

__all__ = [
    "CHECK_CACHE_HITS",
    "CHECK_CACHE_MISSES",
    "WEBHOOK_OUTCOMES",
    "exposition",
    "init_metrics",
    "record_task_outcomes",
]

# prometheus_client chooses between in-memory and file-backed values when it is first imported,
# from the same variable: read here once, so that both always agree.
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

REQUEST_LATENCY = Histogram(
    "tollgate_http_request_duration_seconds",
    "Time from the request's first hook to its answer, by route (its URL rule), method and "
    "status class.",
    ["endpoint", "method", "status"],
    # An entitlement check answers in about a millisecond; pages waiting on Stripe in seconds.
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WEBHOOK_OUTCOMES = Counter(
    "tollgate_webhook_events",
    "Signed Stripe events received, by type and outcome (processed, duplicate, ignored, failed).",
    ["type", "outcome"],
)
TASK_OUTCOMES = Counter(
    "tollgate_tasks",
    "Worker tasks finished, by task and outcome (complete, error, retrying, expired, ...).",
    ["task", "outcome"],
)
CHECK_CACHE = Counter(
    "tollgate_check_cache_lookups",
    "Entitlement checks that looked in the worker's check cache: answered from it (hit) or not.",
    ["result"],
)
# Bound once: the check's hot path pays for one increment, not for finding its series.
CHECK_CACHE_HITS = CHECK_CACHE.labels("hit")
CHECK_CACHE_MISSES = CHECK_CACHE.labels("miss")

# Methods beyond these (a client may send any token) share one label, to bound the series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Huey's signals that end a task's run; enqueued, scheduled and executing are not outcomes.
TASK_OUTCOME_SIGNALS = (
    huey_signals.SIGNAL_COMPLETE,
    huey_signals.SIGNAL_ERROR,
    huey_signals.SIGNAL_RETRYING,
    huey_signals.SIGNAL_EXPIRED,
    huey_signals.SIGNAL_LOCKED,
    huey_signals.SIGNAL_REVOKED,
    huey_signals.SIGNAL_CANCELED,
    huey_signals.SIGNAL_INTERRUPTED,
    huey_signals.SIGNAL_TIMEOUT,
    huey_signals.SIGNAL_RATE_LIMITED,
)


def init_metrics(app: Flask) -> None:
    """Time every request, labelled by its route rather than its path (a bounded set)."""

    @app.before_request
    def start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def observe_latency(response: Response) -> Response:
        # Absent when an earlier hook answered before this one ran.
        started: float | None = g.pop("metrics_started", None)
        if started is not None:
            rule = request.url_rule
            REQUEST_LATENCY.labels(
                rule.rule if rule is not None else "unmatched",
                request.method if request.method in KNOWN_METHODS else "other",
                f"{response.status_code // 100}xx",
            ).observe(time.perf_counter() - started)
        return response


def record_task_outcomes(huey: Huey) -> None:
    """Count each task's outcome by the task's name, from Huey's signals (in the worker)."""

    @huey.signal(*TASK_OUTCOME_SIGNALS)
    def count_outcome(signal: str, task: Any, *args: Any, **kwargs: Any) -> None:
        TASK_OUTCOMES.labels(task.name, signal).inc()


class _ThisProcess(Collector):
    """The default registry's metrics: this process's counts and its CPU, memory and GC."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def exposition(*figures: Collector) -> bytes:
    """Prometheus' text format: every process's counts, and ``figures`` read now."""
    registry = CollectorRegistry()
    if MULTIPROCESS:
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_ThisProcess())
    for collector in figures:
        registry.register(collector)
    return generate_latest(registry)
