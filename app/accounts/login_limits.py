"""Failed log-ins, counted per email address and per client IP, with the `limits` library.

Only failures count, so a person who logs in often is never slowed down. The log-in route asks
before it checks a password and counts after a failure; no other request pays anything for it
(an app-wide rate-limit hook would run before every API call too). The counts live where
``RATELIMIT_STORAGE_URI`` says: in the process by default, in Redis to share them between
processes and hosts.
"""

from __future__ import annotations

import math
import time

from flask import Flask, current_app
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

EXTENSION = "tollgate.login_limits"


class LoginLimits:
    """The two limits on failed log-ins and the counts behind them."""

    def __init__(self, storage_uri: str, per_address: str, per_ip: str) -> None:
        self._limiter = FixedWindowRateLimiter(storage_from_string(storage_uri))
        self._limits: list[tuple[str, RateLimitItem]] = [
            ("login-address", parse(per_address)),
            ("login-ip", parse(per_ip)),
        ]

    def retry_after(self, address: str, ip: str) -> int | None:
        """Seconds until this address and IP may try again; None while they may."""
        waits = [
            self._limiter.get_window_stats(limit, scope, key).reset_time - time.time()
            for (scope, limit), key in zip(self._limits, (address, ip), strict=True)
            if not self._limiter.test(limit, scope, key)
        ]
        return max(1, math.ceil(max(waits))) if waits else None

    def count_failure(self, address: str, ip: str) -> None:
        """One more failed log-in for this address and IP."""
        for (scope, limit), key in zip(self._limits, (address, ip), strict=True):
            self._limiter.hit(limit, scope, key)


def init_login_limits(app: Flask) -> None:
    """Give the app its log-in limits, from its configuration."""
    app.extensions[EXTENSION] = LoginLimits(
        app.config["RATELIMIT_STORAGE_URI"],
        app.config["LOGIN_LIMIT_PER_ADDRESS"],
        app.config["LOGIN_LIMIT_PER_IP"],
    )


def login_limits() -> LoginLimits:
    """The current app's log-in limits."""
    limits: LoginLimits = current_app.extensions[EXTENSION]
    return limits
