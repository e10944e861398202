"""The API blueprint: bearer-key authentication and JSON errors for every route under it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Blueprint, Flask, current_app, g, request
from flask.blueprints import BlueprintSetupState
from flask.sessions import SessionInterface, SessionMixin
from flask.wrappers import Request
from flask.wrappers import Response as FlaskResponse
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from app.accounts.api_keys import READ
from app.api.errors import UNKEEPABLE_TEXT, ApiError, error_response, keepable_text
from app.api.keys import key_hash, key_scopes
from app.billing.gateway import GatewayError
from app.extensions import csrf, db
from app.logs import bind_customer

bp = Blueprint("api", __name__, url_prefix="/api/v1/client")
# Bearer keys, not cookies, authenticate these calls: there is no session to forge requests with.
csrf.exempt(bp)


class PagesOnlySessions(SessionInterface):
    """The pages' session cookie, which API calls neither read nor set: they send a bearer key."""

    def __init__(self, pages: SessionInterface, api_prefix: str) -> None:
        self.pages = pages
        self.api_prefix = api_prefix

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        """An empty, unsaved session for an API call; the pages' own session otherwise."""
        if request.path.startswith(self.api_prefix):
            return self.make_null_session(app)
        return self.pages.open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: FlaskResponse) -> None:
        """Flask saves only the pages' sessions (an API call's is the null session)."""
        self.pages.save_session(app, session, response)


@bp.record_once
def _keep_sessions_to_pages(state: BlueprintSetupState) -> None:
    app = cast(Flask, state.app)
    app.session_interface = PagesOnlySessions(app.session_interface, bp.url_prefix or "")


# The scope each API view needs (``needs_scope``). A view that declares none is refused to
# every key: an endpoint fails closed until it says what it needs.
SCOPE_OF_VIEW: dict[str, str] = {}

# Views that look the key up in their own first query (``g.api_key_hash``) and answer 401 when
# it is not valid: the entitlement check, so that it costs one round trip rather than two.
# That query checks only that the key is unrevoked, so it stands for the key check only where
# the view needs ``read``, which every key has.
KEY_CHECKED_BY_VIEW: set[str] = set()

V = TypeVar("V", bound=Callable[..., Any])


def needs_scope(scope: str) -> Callable[[V], V]:
    """Declare the scope (``read`` or ``write``) an API view needs of the caller's key."""

    def declare(view: V) -> V:
        SCOPE_OF_VIEW[f"{bp.name}.{view.__name__}"] = scope
        return view

    return declare


def checks_key_itself(view: V) -> V:
    """Mark an API view that checks ``g.api_key_hash`` itself, before it answers anything."""
    KEY_CHECKED_BY_VIEW.add(f"{bp.name}.{view.__name__}")
    return view


@bp.before_request
def log_customer_of_path() -> None:
    """Name the customer of the URL on the call's log lines, refused calls included: from the
    path alone, as the entitlement check must not spend a query on it."""
    reference_id = (request.view_args or {}).get("reference_id")
    if reference_id is not None:
        bind_customer(str(reference_id))


@bp.before_request
def authenticate() -> tuple[Response, int] | None:
    """Every call needs ``Authorization: Bearer <key>`` with an unrevoked key that has the
    scope the call needs."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return error_response(
            ApiError(401, "unauthorized", "Send your API key as Authorization: Bearer <key>.")
        )
    hashed = key_hash(token.strip())
    needed = SCOPE_OF_VIEW.get(request.endpoint or "")
    if hashed is not None and needed == READ and request.endpoint in KEY_CHECKED_BY_VIEW:
        g.api_key_hash = hashed
        return None
    scopes = None if hashed is None else key_scopes(hashed)
    if scopes is None:
        return error_response(ApiError(401, "unauthorized", "This API key is not valid."))
    if needed is None or needed not in scopes:
        return error_response(insufficient_scope(scopes, needed))
    return None


def insufficient_scope(scopes: frozenset[str], needed: str | None) -> ApiError:
    """The 403 for a key without the scope the call needs (a call that declares none, none
    may make)."""
    call = f"{request.method} {request.path}"
    held = " and ".join(sorted(scopes))
    has = f"This API key has the {held} scope{'s' if len(scopes) > 1 else ''}"
    if needed is None:
        return ApiError(
            403, "insufficient_scope", f"{has}; {call} declares no scope, so no key may call it."
        )
    return ApiError(403, "insufficient_scope", f"{has}; {call} needs {needed}.")


@bp.before_request
def refuse_unkeepable_ids() -> tuple[Response, int] | None:
    """An id in the path with a NUL character names nothing a database can hold: not found."""
    if any(not keepable_text(str(value)) for value in (request.view_args or {}).values()):
        return error_response(ApiError(404, "not_found", f"Nothing has that id. {UNKEEPABLE_TEXT}"))
    return None


@bp.errorhandler(ApiError)
def handle_api_error(error: ApiError) -> tuple[Response, int]:
    """A refusal: nothing was written."""
    db.session.rollback()
    return error_response(error)


@bp.errorhandler(GatewayError)
def handle_gateway_error(error: GatewayError) -> tuple[Response, int]:
    """Stripe refused, failed or timed out. Nothing is half-done: what was committed before the
    call stands whole (a customer without its Stripe customer yet), and a retry finishes it."""
    db.session.rollback()
    declined = error.code in ("card_declined", "insufficient_funds", "expired_card")
    return error_response(
        ApiError(
            402 if declined else 502, "payment_failed" if declined else "stripe_error", str(error)
        )
    )


@bp.errorhandler(OperationalError)
def handle_database_unavailable(error: OperationalError) -> tuple[Response, int]:
    """The database could not take the call now: other writers held it past the lock wait, or
    the connection was lost. The call's transaction is rolled back (a batch on PostgreSQL may
    have committed its first part: resent, those events replay); the caller should retry."""
    db.session.rollback()
    current_app.logger.warning("API call refused with 503: %s", error.orig)
    response, status = error_response(
        ApiError(
            503, "database_busy", "The database is busy and nothing was written: retry shortly."
        )
    )
    response.headers["Retry-After"] = "1"
    return response, status


@bp.errorhandler(HTTPException)
def handle_http_error(error: HTTPException) -> tuple[Response, int]:
    """404, 405, 413 and friends, as JSON."""
    code = (error.name or "error").lower().replace(" ", "_")
    return error_response(ApiError(error.code or 500, code, error.description or code))
