"""The Sandbox: Stripe's v1 API, its clock and its webhook queue, over one SQLite file."""

from __future__ import annotations

import fcntl
import logging
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any, TypeVar

from . import clock, keys, webhooks
from .api import EXPANSIONS, ROUTES
from .context import Ctx, global_now, shift_global_clock
from .faults import Faults
from .router import Router
from .store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")


class SenderBusy(Exception):
    """Another process moves the clock and delivers the webhooks (a running server)."""


class Sandbox:
    """An offline, stateful stand-in for the part of Stripe that Tollgate uses."""

    def __init__(self, db_path: str, base_url: str = "http://127.0.0.1:5000") -> None:
        self.path = db_path
        self.store = Store(db_path)
        self.store.watch(clock.STEP_TYPES)
        self.base_url = base_url.rstrip("/")
        # The dev server is threaded and webhook delivery runs in its own thread.
        self._lock = threading.RLock()
        self._router = Router(ROUTES, EXPANSIONS)
        self._thread: threading.Thread | None = None
        # The background tick runs under this lock, and idles while `by_hand` is set.
        self._tick_lock = threading.Lock()
        self._by_hand = False
        self._ticking_here = False
        # Stripe failing: a share of the SDK's calls fail (faults.py); None, the default, none.
        self.faults: Faults | None = None

    def handle(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: str | bytes | None,
        query: str = "",
    ) -> tuple[int, dict[str, str], bytes]:
        """Serve one Stripe v1 API request; returns (status, headers, JSON body)."""
        text = body.decode() if isinstance(body, bytes) else body or ""
        full_path = f"{path}?{query}" if query else path
        with self._lock:
            return self._router.dispatch(
                self.store, self.base_url, method.upper(), full_path, headers, text
            )

    def run(self, action: Callable[..., T], *args: Any) -> T:
        """Run `action(ctx, *args)` as one transaction (hosted pages, CLI)."""
        with self._lock, self.store.transaction():
            return action(Ctx(self.store, self.base_url), *args)

    def create_restricted_key(self, permissions: Mapping[str, str]) -> str:
        """A new restricted key, `rk_test_...`, that may only read or write the resource groups
        given, e.g. {"customers": "read", "invoices": "write"} (`keys.RESOURCE_GROUPS`); it
        lives in the sandbox's file, so every process sharing the file accepts it."""
        with self._lock, self.store.transaction():
            return keys.create_restricted_key(self.store, permissions)

    def now(self) -> int:
        """The global sandbox clock in unix seconds."""
        with self._lock:
            return global_now(self.store)

    def advance(self, seconds: int) -> None:
        """Move the global clock forward, processing everything that falls due on the way."""
        if seconds < 0:
            raise ValueError("the sandbox clock only moves forward")
        with self._lock, self.store.transaction():
            ctx = Ctx(self.store, self.base_url)
            clock.advance(ctx, None, global_now(self.store) + seconds)
            shift_global_clock(self.store, seconds)

    def pending_deliveries(self) -> list[webhooks.Delivery]:
        """Webhook deliveries not yet acknowledged with a 2xx."""
        with self._lock:
            return webhooks.pending(self.store, due_only=False)

    def deliver_pending(
        self,
        post: webhooks.Post | None = None,
        *,
        shuffle: bool = False,
        duplicate: bool = False,
        rng: random.Random | None = None,
        due_only: bool = False,
    ) -> int:
        """Post queued webhooks; failures stay queued. Returns the number delivered."""
        with self._lock:
            deliveries = webhooks.pending(self.store, due_only)
        # Posting happens outside the lock: the receiver may call the API back.
        outcome = webhooks.send(
            deliveries,
            post or webhooks.post_over_http,
            shuffle=shuffle,
            duplicate=duplicate,
            rng=rng or random.Random(),  # noqa: S311 - ordering, not secrecy
        )
        with self._lock, self.store.transaction():
            return webhooks.record(self.store, deliveries, outcome)

    def start_delivery_thread(self, interval: float = 0.5) -> None:
        """Dev mode: process what real time made due and deliver webhooks, in the background.

        Every serving process starts one (gunicorn's workers, the worker, a command), but only
        the holder of a lock beside the sandbox's file ticks, as Stripe is one sender: the
        others wait, and one takes over when the holder's process ends (the lock goes with it).
        """
        if self._thread is not None:
            return
        lock_file = open(f"{self.path}.delivery.lock", "a+b")  # noqa: SIM115 (held for life)

        def loop() -> None:
            stop = threading.Event()
            while not stop.wait(interval):
                with self._tick_lock:
                    if self._by_hand:
                        continue
                    try:
                        self._ticking_here = self._ticking_here or _try_lock(lock_file)
                        if self._ticking_here:
                            self.advance(0)
                            self.deliver_pending(due_only=True)
                    except Exception:  # keep the thread alive; the next tick retries
                        log.exception("stripe sandbox background tick failed")

        self._thread = threading.Thread(target=loop, name="stripe-sandbox", daemon=True)
        self._thread.start()

    @contextmanager
    def by_hand(self) -> Iterator[None]:
        """Within this block only this process's own calls move the clock and deliver
        webhooks: no background tick does, this process's or another's (a command that
        delivers the webhooks itself, in order, as the clock moves). Raises SenderBusy when
        another process ticks: a server is running on the same sandbox file."""
        with self._tick_lock:
            self._by_hand = True
        try:
            if self._ticking_here:
                yield  # this process holds the lock already, and its tick now idles
                return
            with open(f"{self.path}.delivery.lock", "a+b") as lock_file:
                if not _try_lock(lock_file):
                    raise SenderBusy(
                        "another process is moving the sandbox's clock and delivering its "
                        "webhooks (a running server?)"
                    )
                yield
        finally:
            with self._tick_lock:
                self._by_hand = False


def _try_lock(file: IO[bytes]) -> bool:
    """Take the exclusive lock on the file if nobody holds it; whether this process has it."""
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
