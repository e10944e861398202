"""A small HTTP load generator: keep-alive connections in several processes, with latencies."""

from __future__ import annotations

import http.client
import json
import multiprocessing
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

# A request: (method, path, body or None); the factory gets (worker number, sequence number).
Request = tuple[str, str, bytes | None]
RequestFactory = Callable[[int, int], Request]


@dataclass
class Result:
    """What a run measured."""

    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p99(self) -> float:
        return self.percentile(0.99)


def _worker(
    base_url: str,
    headers: dict[str, str],
    factory: RequestFactory,
    worker: int,
    threads: int,
    seconds: float,
    rate_per_thread: float | None,
    queue: multiprocessing.Queue,  # type: ignore[type-arg]
) -> None:
    parts = urlsplit(base_url)
    results: list[tuple[int, int, list[float]]] = []
    lock = threading.Lock()

    def run(thread: int) -> None:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        done = errors = 0
        latencies: list[float] = []
        start = time.perf_counter()
        interval = 1 / rate_per_thread if rate_per_thread else 0.0
        sequence = 0
        while True:
            now = time.perf_counter()
            if now - start >= seconds:
                break
            if interval:
                # Open loop: each request has a planned send time; latency counts from it.
                planned = start + sequence * interval
                if planned > now:
                    time.sleep(planned - now)
                sent = planned
            else:
                sent = time.perf_counter()
            method, path, body = factory(worker * threads + thread, sequence)
            sequence += 1
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                ok = response.status < 400
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
                ok = False
            latencies.append((time.perf_counter() - sent) * 1000)
            done += 1
            errors += 0 if ok else 1
        with lock:
            results.append((done, errors, latencies))

    pool = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    queue.put(
        (
            sum(r[0] for r in results),
            sum(r[1] for r in results),
            [latency for r in results for latency in r[2]],
        )
    )


def run_load(
    base_url: str,
    factory: RequestFactory,
    *,
    seconds: float,
    processes: int = 2,
    threads: int = 8,
    rate: float | None = None,
    api_key: str = "",
) -> Result:
    """Send requests for ``seconds``: as fast as possible, or at ``rate`` requests/s in total."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    per_thread = rate / (processes * threads) if rate else None
    started = time.perf_counter()
    workers = [
        multiprocessing.Process(
            target=_worker,
            args=(base_url, headers, factory, n, threads, seconds, per_thread, queue),
        )
        for n in range(processes)
    ]
    for process in workers:
        process.start()
    collected = [queue.get() for _ in workers]
    for process in workers:
        process.join()
    elapsed = time.perf_counter() - started
    return Result(
        requests=sum(c[0] for c in collected),
        errors=sum(c[1] for c in collected),
        seconds=min(elapsed, seconds + 0.5),
        latencies_ms=[latency for c in collected for latency in c[2]],
    )


def json_body(payload: object) -> bytes:
    """A compact JSON request body."""
    return json.dumps(payload, separators=(",", ":")).encode()
