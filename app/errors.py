"""Error pages in the site's layout, and JSON errors under /api/."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.wrappers import Response

from app.extensions import db

log = logging.getLogger(__name__)

CSRF_MESSAGE = (
    "This form's security token is missing or has expired. Reload the page and try again."
)
RATE_LIMIT_MESSAGE = "Too many attempts. Wait a minute, then try again."


def _error_code(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "_").replace("'", "")


def _respond(exc: HTTPException, message: str) -> tuple[Response | str, int, list[tuple[str, str]]]:
    status = exc.code or 500
    # What the exception says besides its body, such as a 429's or 503's Retry-After.
    headers = [(name, value) for name, value in exc.get_headers() if name != "Content-Type"]
    if request.path.startswith("/api/"):
        body = {"error": {"code": _error_code(exc), "message": message}}
        return jsonify(body), status, headers
    page = render_template("errors/error.html", status=status, title=exc.name, message=message)
    return page, status, headers


def handle_http_error(
    exc: HTTPException,
) -> tuple[Response | str, int, list[tuple[str, str]]] | HTTPException:
    """Any 4xx or 5xx raised as an HTTPException, shown in the layout or as JSON."""
    if exc.code is None:  # a RequestRedirect or another non-error control-flow exception
        return exc
    if isinstance(exc, CSRFError):
        return _respond(exc, CSRF_MESSAGE)
    if exc.code == 429:
        return _respond(exc, RATE_LIMIT_MESSAGE)
    return _respond(exc, exc.description or exc.name)


def handle_unexpected_error(exc: Exception) -> tuple[Response | str, int, list[tuple[str, str]]]:
    """A bug: log it, undo the transaction, and say sorry without details."""
    db.session.rollback()
    log.exception("Unhandled error on %s %s", request.method, request.path)
    return _respond(
        InternalServerError(),
        "Something went wrong on our side. It has been logged; please try again.",
    )


def register_error_handlers(app: Flask) -> None:
    """Route every error through the handlers above."""
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected_error)
