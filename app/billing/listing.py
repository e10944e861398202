"""Reading whole Stripe lists, page by page, waiting out Stripe's rate limits.

Stripe answers too many requests with 429 ``rate_limit`` (which the SDK does not retry) and an
object busy elsewhere with 429 ``lock_timeout`` (which it retries a few times). Its advice for
both is exponential backoff with jitter; these wait 1, 2, 4 ... up to 30 seconds, eight times.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import stripe

from app.billing.gateway import GatewayError, StripeGateway

log = logging.getLogger(__name__)

PAGE_SIZE = 100  # Stripe's largest page
BACKOFF_ATTEMPTS = 8
BACKOFF_CAP_SECONDS = 30.0
RETRYABLE = frozenset({"rate_limit", "lock_timeout"})

Sleep = Callable[[float], None]
T = TypeVar("T")


def with_backoff(call: Callable[[], T], sleep: Sleep = time.sleep) -> T:
    """Make a call to Stripe, waiting and trying again while Stripe limits it; a GatewayError
    once Stripe refuses it for another reason, or keeps limiting it after the last wait."""
    for attempt in range(BACKOFF_ATTEMPTS):
        try:
            return call()
        except GatewayError as exc:
            if exc.code not in RETRYABLE or attempt == BACKOFF_ATTEMPTS - 1:
                raise
            wait = min(BACKOFF_CAP_SECONDS, 2.0**attempt) * (0.5 + random.random() / 2)  # noqa: S311
            log.info("Stripe limited a call (%s); waiting %.1f s", exc.code, wait)
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def page_with_backoff(
    stripe_gateway: StripeGateway,
    resource: str,
    params: dict[str, Any],
    sleep: Sleep = time.sleep,
) -> stripe.ListObject[Any]:
    """One page of a list, waiting out Stripe's limits."""
    return with_backoff(
        lambda: stripe_gateway.list_page(resource, {"limit": PAGE_SIZE, **params}), sleep
    )


def every_object(
    stripe_gateway: StripeGateway,
    resource: str,
    params: dict[str, Any],
    sleep: Sleep = time.sleep,
) -> Iterator[Any]:
    """Each object of a whole list, newest first, page after page."""
    starting_after: str | None = None
    while True:
        cursor = {"starting_after": starting_after} if starting_after else {}
        page = page_with_backoff(stripe_gateway, resource, {**params, **cursor}, sleep)
        yield from page.data
        if not page.has_more or not page.data:
            return
        starting_after = page.data[-1].id
