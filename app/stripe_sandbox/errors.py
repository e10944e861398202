"""Stripe's error envelope, raised anywhere in the sandbox and rendered by the router."""

from __future__ import annotations

from typing import Any


class StripeError(Exception):
    """An API error rendered as Stripe's `{"error": {...}}` body."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.code = code
        self.param = param
        self.decline_code = decline_code
        # Set when the work done before the error must persist (e.g. a failed charge attempt).
        self.keep_changes = False

    def body(self) -> dict[str, Any]:
        """The JSON body Stripe sends for this error."""
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        for key in ("code", "param", "decline_code"):
            if getattr(self, key) is not None:
                error[key] = getattr(self, key)
        return {"error": error}


def unknown_parameter(param: str) -> StripeError:
    """Stripe rejects any parameter it does not document."""
    return StripeError(
        f"Received unknown parameter: {param}", code="parameter_unknown", param=param
    )


def missing_parameter(param: str) -> StripeError:
    """A required parameter was not sent."""
    return StripeError(f"Missing required param: {param}.", code="parameter_missing", param=param)


def no_such(kind: str, object_id: str, param: str = "id") -> StripeError:
    """Stripe answers 404 `resource_missing` for an unknown id, naming the parameter."""
    return StripeError(
        f"No such {kind}: '{object_id}'",
        status=404,
        code="resource_missing",
        param=param,
    )


def card_declined(message: str, decline_code: str) -> StripeError:
    """A card charge refused by the (simulated) issuer."""
    return StripeError(
        message,
        status=402,
        type="card_error",
        code="card_declined",
        decline_code=decline_code,
    )
