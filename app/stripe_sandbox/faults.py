"""Stripe and the network failing: a seeded share of the SDK's calls answered as they fail.

Set ``sandbox.faults = Faults(share=0.2, seed=1)`` (or ``STRIPE_SANDBOX_FAULTS=0.2`` for a running
app) and a fifth of the calls that reach the sandbox through `SandboxHTTPClient` fail, each in one
of the ways Stripe's API and the network fail, so that what the SDK retries (and what the
application does with what is left) is what it would be against Stripe:

``rate_limit``
    429, ``rate_limit``: too many requests. Stripe's limiter runs before anything else, so
    nothing is done and nothing saved under the Idempotency-Key; the SDK does not retry it.
``lock_timeout``
    429, ``lock_timeout``: the object is locked by another request. Nothing is done; Stripe
    sends ``Stripe-Should-Retry: true`` and the SDK retries.
``api_error``
    500, ``api_error``, before the endpoint began: nothing is done or saved under the key, and
    the SDK retries it as it retries every 5xx.
``timeout``
    The sandbox did the request, but its answer came after the client gave up waiting: the SDK
    sees ``APIConnectionError`` (a retryable network error). A retry with the same
    Idempotency-Key gets the saved answer; a GET or DELETE is made again.
``dropped``
    The connection broke before the request reached Stripe: nothing is done; the SDK sees a
    retryable ``APIConnectionError``.
``lost``
    The connection broke after Stripe did the request, on the way back: done, answer lost, as
    with ``timeout``. This is the dangerous case, where only an Idempotency-Key keeps a retry
    from doing it twice.

The first three are answers, the last three raise what the SDK's own HTTP clients raise for a
network failure. Faults apply to the calls of Tollgate's SDK client only (the hosted pages,
webhook deliveries and the sandbox's HTTP API under /sandbox/v1 are left alone), and each attempt
of a retried call is drawn on its own.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import stripe

from .store import new_id

KINDS = ("rate_limit", "lock_timeout", "api_error", "timeout", "dropped", "lost")
# The kinds answered by Stripe (nothing done); the others are network failures.
ANSWERED = frozenset({"rate_limit", "lock_timeout", "api_error"})
# The network failures that happen after the sandbox did the request.
AFTER_APPLYING = frozenset({"timeout", "lost"})

_MESSAGES = {
    "rate_limit": (
        "Request rate limit exceeded. Learn more about rate limits here "
        "https://stripe.com/docs/rate-limits."
    ),
    "lock_timeout": (
        "This object cannot be accessed right now because another API request or Stripe "
        "process is currently accessing it. If you see this error intermittently, retry the "
        "request. If you see this error frequently and are making multiple concurrent requests "
        "to a single object, make your requests serially or at a lower rate."
    ),
    "api_error": (
        "Sorry, something went wrong on Stripe's end. We have already been notified of the "
        "problem. Please try again."
    ),
}
_NETWORK_ERRORS = {
    "timeout": "ReadTimeout: HTTPSConnectionPool(host='api.stripe.com', port=443): "
    "Read timed out. (read timeout=30)",
    "dropped": "ConnectionError: ('Connection aborted.', "
    "ConnectionResetError(104, 'Connection reset by peer'))",
    "lost": "ConnectionError: ('Connection aborted.', "
    "RemoteDisconnected('Remote end closed connection without response'))",
}

Matcher = Callable[[str, str], bool]


@dataclass
class Faults:
    """Which calls fail and how: ``share`` of them (0 to 1), drawn from ``seed``.

    ``kinds`` weighs the kinds drawn (all of KINDS equally by default); ``only(method, path)``
    limits the faults to the calls it accepts. A ``script`` replaces the draw, for a test that
    needs one exact failure: the calls ``only`` accepts get its kinds in turn (None: no fault),
    then no more faults. ``counts`` holds the faults made so far by kind, ``calls`` the calls
    seen.
    """

    share: float = 0.0
    seed: int | None = None
    kinds: Mapping[str, float] | None = None
    only: Matcher | None = None
    script: Sequence[str | None] | None = None
    counts: Counter[str] = field(default_factory=Counter, init=False)
    calls: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not 0 <= self.share <= 1:
            raise ValueError(f"the share of faulty calls is between 0 and 1, not {self.share}")
        weights = dict(self.kinds) if self.kinds is not None else dict.fromkeys(KINDS, 1.0)
        unknown = sorted(set(weights) - set(KINDS))
        unknown += sorted({kind for kind in self.script or () if kind and kind not in KINDS})
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; the kinds are {', '.join(KINDS)}")
        self._names = [name for name, weight in weights.items() if weight > 0]
        self._weights = [weights[name] for name in self._names]
        if not self._names:
            raise ValueError("at least one fault kind needs a weight above 0")
        self._random = random.Random(self.seed)  # noqa: S311 - a test's faults, not secrecy
        self._script = list(self.script) if self.script is not None else None
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, spec: str | float | None) -> Faults | None:
        """Faults from a setting such as ``0.2`` or ``0.2:timeout,lost`` (a share, then the
        kinds to draw from); None for nothing, ``0`` or an empty setting."""
        if spec is None:
            return None
        share_text, _, kinds_text = str(spec).strip().partition(":")
        if not share_text:
            return None
        try:
            share = float(share_text)
        except ValueError:
            raise ValueError(
                f"STRIPE_SANDBOX_FAULTS is a share of calls (0 to 1), then optionally ':' and "
                f"the kinds ({','.join(KINDS)}), not {spec!r}"
            ) from None
        if share == 0:
            return None
        kinds = [kind.strip() for kind in kinds_text.split(",") if kind.strip()]
        return cls(share, kinds=dict.fromkeys(kinds, 1.0) if kinds else None)

    @property
    def total(self) -> int:
        """Faults made so far."""
        return sum(self.counts.values())

    def draw(self, method: str, path: str) -> str | None:
        """The fault of this call, if it gets one."""
        with self._lock:
            self.calls += 1
            if self.only is not None and not self.only(method, path):
                return None
            if self._script is not None:
                kind = self._script.pop(0) if self._script else None
            elif self._random.random() < self.share:
                kind = self._random.choices(self._names, self._weights)[0]
            else:
                kind = None
            if kind is not None:
                self.counts[kind] += 1
            return kind


def answer(kind: str) -> tuple[int, dict[str, str], bytes]:
    """Stripe's answer for a fault that Stripe answers: (status, headers, JSON body)."""
    headers = {"Content-Type": "application/json", "Request-Id": new_id("req", 14)}
    if kind == "api_error":
        status, error = 500, {"type": "api_error", "message": _MESSAGES[kind]}
    else:
        status = 429
        error = {
            "type": "invalid_request_error",
            "code": kind,
            "doc_url": f"https://stripe.com/docs/error-codes/{kind.replace('_', '-')}",
            "message": _MESSAGES[kind],
        }
        if kind == "lock_timeout":
            # Stripe asks for a retry of a lock timeout (it is likely to succeed), and of no
            # other 429: retrying a real rate limit would only add to it.
            headers["Stripe-Should-Retry"] = "true"
    return status, headers, json.dumps({"error": error}).encode()


def network_error(kind: str) -> stripe.APIConnectionError:
    """What the SDK's HTTP clients raise for a timeout or a broken connection: retryable."""
    # The SDK leaves this constructor unannotated.
    return stripe.APIConnectionError(  # type: ignore[no-untyped-call]
        "Unexpected error communicating with Stripe.  If this problem persists,\n"
        "let us know at support@stripe.com.\n\n"
        f"(Network error: {_NETWORK_ERRORS[kind]})",
        should_retry=True,
    )
