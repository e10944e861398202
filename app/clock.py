"""The one clock: the sandbox's in sandbox mode, so advancing it moves the whole app in time."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from flask import current_app


def now() -> datetime:
    """The current time as Tollgate sees it (aware, UTC)."""
    return to_datetime(timestamp())


def timestamp() -> int:
    """The current time in Unix seconds, as Stripe counts it."""
    sandbox = current_app.extensions.get("stripe_sandbox")
    return int(sandbox.now()) if sandbox is not None else int(time.time())


def to_datetime(value: int) -> datetime:
    """A Stripe timestamp (Unix seconds) as an aware datetime."""
    return datetime.fromtimestamp(value, UTC)


def from_timestamp(value: int | None) -> datetime | None:
    """A Stripe timestamp that may be null, as an aware datetime or None."""
    return None if value is None else to_datetime(value)
