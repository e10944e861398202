"""Domain errors of the usage engine; each carries a stable code and the HTTP status it means."""

from __future__ import annotations


class UsageError(Exception):
    """A usage request that cannot be honoured; nothing was written."""

    code = "invalid_usage"
    status = 422

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidApiKey(UsageError):
    """The API key is unknown or revoked."""

    code = "unauthorized"
    status = 401

    def __init__(self, message: str = "This API key is not valid.") -> None:
        super().__init__(message)


class InvalidUsage(UsageError):
    """Malformed input: bad units, an empty key, a feature that cannot be metered."""


class UnknownFeature(UsageError):
    """The catalog has no feature with this key."""

    code = "unknown_feature"
    status = 404


class UnknownCustomer(UsageError):
    """No customer has this reference id."""

    code = "unknown_customer"
    status = 404


class NotEntitled(UsageError):
    """The customer may not use the feature now (no subscription, its status, not in the plan)."""

    code = "not_entitled"
    status = 403

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        # no_subscription, not_entitled (the subscription's status) or feature_not_in_plan
        self.reason = reason


class LimitExceeded(UsageError):
    """The event would take the period's usage past the plan's hard limit."""

    code = "limit_exceeded"
    status = 403


class IdempotencyConflict(UsageError):
    """The idempotency key was used before with a different event."""

    code = "idempotency_key_reused"
    status = 409
