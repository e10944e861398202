"""Requests that build many short-lived objects, run with the cyclic garbage collector paused.

A batch of 1,000 events keeps about 20,000 objects alive while it is recorded (rows, results,
answers) and frees them all by reference counting when it is done: none of them form cycles.
With the collector running, they set off about 33 young collections per batch, then promote to
the older generations and set off full collections, which walk them again: about 6 ms of a
gunicorn worker's 43 ms of CPU per batch (bench/README.md). Raising the collector's
thresholds instead was tried and not kept: the rare large collection stalled every request
in flight, checks included.

The collector is paused for the whole process (it has no per-thread switch), from the first
such request in flight until the last one is done, and only if it was running: other threads
go on, and any cycle they make is collected once it runs again. While such requests overlap
without a break, the one that ends after the collector has been paused for MAX_PAUSE_SECONDS
collects once, so that cycles never pile up for longer than that.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

# A full collection after gc.freeze() takes a few ms here: once every 2 s of unbroken pause
# costs a busy worker next to nothing.
MAX_PAUSE_SECONDS = 2.0

_lock = threading.Lock()
_in_flight = 0
_paused_by_us = False
_paused_since = 0.0


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic collector while the block runs (and any other paused block)."""
    global _in_flight, _paused_by_us, _paused_since
    with _lock:
        if _in_flight == 0 and gc.isenabled():
            gc.disable()
            _paused_by_us = True
            _paused_since = time.monotonic()
        _in_flight += 1
    try:
        yield
    finally:
        collect = False
        with _lock:
            _in_flight -= 1
            if _in_flight == 0 and _paused_by_us:
                _paused_by_us = False
                gc.enable()
            elif _paused_by_us and time.monotonic() - _paused_since >= MAX_PAUSE_SECONDS:
                collect = True
                _paused_since = time.monotonic()
        if collect:
            gc.collect()


def without_collection(view: Callable[P, R]) -> Callable[P, R]:
    """Run ``view`` with the cyclic collector paused (see collector_paused)."""

    @wraps(view)
    def paused(*args: P.args, **kwargs: P.kwargs) -> R:
        with collector_paused():
            return view(*args, **kwargs)

    return paused
