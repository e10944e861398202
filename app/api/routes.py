"""The API blueprint: bearer-key authentication and JSON errors for every route under it."""

from __future__ import annotations

from flask import Blueprint, g, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from app.api.errors import ApiError, error_response
from app.api.keys import find_active_key
from app.billing.gateway import GatewayError
from app.extensions import csrf, db

bp = Blueprint("api", __name__, url_prefix="/api/v1/client")
# Bearer keys, not cookies, authenticate these calls: there is no session to forge requests with.
csrf.exempt(bp)


@bp.before_request
def authenticate() -> tuple[Response, int] | None:
    """Every call needs ``Authorization: Bearer <key>`` with an unrevoked key."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return error_response(
            ApiError(401, "unauthorized", "Send your API key as Authorization: Bearer <key>.")
        )
    key = find_active_key(token.strip())
    if key is None:
        return error_response(ApiError(401, "unauthorized", "This API key is not valid."))
    g.api_key_id = key.id
    return None


@bp.errorhandler(ApiError)
def handle_api_error(error: ApiError) -> tuple[Response, int]:
    """A refusal: nothing was written."""
    db.session.rollback()
    return error_response(error)


@bp.errorhandler(GatewayError)
def handle_gateway_error(error: GatewayError) -> tuple[Response, int]:
    """Stripe refused or failed: nothing was written here either."""
    db.session.rollback()
    declined = error.code in ("card_declined", "insufficient_funds", "expired_card")
    return error_response(
        ApiError(
            402 if declined else 502, "payment_failed" if declined else "stripe_error", str(error)
        )
    )


@bp.errorhandler(HTTPException)
def handle_http_error(error: HTTPException) -> tuple[Response, int]:
    """404, 405, 413 and friends, as JSON."""
    code = (error.name or "error").lower().replace(" ", "_")
    return error_response(ApiError(error.code or 500, code, error.description or code))
