"""Signed webhook delivery of queued events, after the request that caused them returned."""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

import stripe

from .context import public
from .store import Store

Post = Callable[[str, bytes, dict[str, str]], int]
# Stripe retries a failing endpoint with exponential backoff for up to three days
# (docs.stripe.com/webhooks#retries); the sandbox doubles from one minute, capped at a day.
_FIRST_RETRY_SECONDS = 60
_MAX_RETRY_SECONDS = 86400


@dataclass(frozen=True)
class Delivery:
    """One event due to one endpoint."""

    delivery_id: int
    event_id: str
    event_type: str
    url: str
    attempts: int
    payload: str
    secret: str


def pending(store: Store, due_only: bool) -> list[Delivery]:
    """Undelivered webhooks; with `due_only`, only those whose backoff has elapsed."""
    rows = store.pending_deliveries(time.time() if due_only else None)
    deliveries = []
    for delivery_id, event_id, endpoint_id, attempts in rows:
        event, endpoint = store.get(event_id), store.get(endpoint_id)
        if event is None or endpoint is None or endpoint.get("deleted"):
            continue
        deliveries.append(
            Delivery(
                delivery_id,
                event_id,
                event["type"],
                endpoint["url"],
                attempts,
                json.dumps(public(event), indent=2),
                endpoint["_secret"],
            )
        )
    return deliveries


def post_over_http(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST a webhook with urllib; an HTTP error status is returned, not raised."""
    if not url.startswith(("http://", "https://")):
        raise OSError(f"webhook endpoints must be http(s) URLs, not {url!r}")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def send(
    deliveries: list[Delivery],
    post: Post,
    *,
    shuffle: bool,
    duplicate: bool,
    rng: random.Random,
) -> dict[int, bool]:
    """Post each delivery (signed at the wall-clock time of sending); delivery id → success."""
    attempts = [d for d in deliveries for _ in range(2 if duplicate else 1)]
    if shuffle:
        rng.shuffle(attempts)
    outcome: dict[int, bool] = {}
    for delivery in attempts:
        # The signature uses real time, not the sandbox clock, so that receivers' 300 s
        # tolerance holds even after the sandbox clock has been advanced by days.
        signature = stripe.WebhookSignature.generate_signature_header(
            delivery.payload, delivery.secret
        )
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": signature,
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        try:
            ok = 200 <= post(delivery.url, delivery.payload.encode(), headers) < 300
        except OSError:
            ok = False
        outcome[delivery.delivery_id] = outcome.get(delivery.delivery_id, False) or ok
    return outcome


def record(store: Store, deliveries: list[Delivery], outcome: dict[int, bool]) -> int:
    """Save the outcome of a round of sends; returns how many deliveries succeeded."""
    now = time.time()
    for delivery in deliveries:
        ok = outcome[delivery.delivery_id]
        backoff = min(_FIRST_RETRY_SECONDS * 2**delivery.attempts, _MAX_RETRY_SECONDS)
        store.record_delivery(delivery.delivery_id, ok, now + backoff)
        event = store.get(delivery.event_id)
        if ok and event is not None:
            event["pending_webhooks"] = max(0, event["pending_webhooks"] - 1)
            store.put(event)
    return sum(outcome.values())
