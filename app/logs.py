"""Logs an operator can search: one JSON object per line on stderr, every logger's alike.

structlog renders the standard library's records (Flask's, werkzeug's, gunicorn's, Huey's, the
app's ``logging.getLogger(__name__)``) through one formatter on the root logger. Each line
carries the request's id, the customer it concerns and, on Stripe calls, Stripe's request id.

Secrets are kept out by not logging them; the redaction below is a last line of defence.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
import time
import uuid
from typing import Any, TextIO

import orjson
import structlog
from flask import Flask, g, request, session
from flask.logging import default_handler
from flask_login import current_user, user_logged_in
from gunicorn.glogging import Logger as GunicornBaseLogger  # type: ignore[import-untyped]
from structlog.typing import EventDict, Processor, WrappedLogger
from werkzeug.wrappers import Response

from app.config import Config

__all__ = [
    "GunicornLogger",
    "bind_customer",
    "build_formatter",
    "gunicorn_logconfig",
    "init_logging",
]

# The root logger's handler carries this name, so that configuring again replaces it.
HANDLER_NAME = "tollgate"
FORMATS = ("json", "console")
# A caller's id is kept only if it cannot forge a line or flood one.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,200}")
# Where Flask-Login keeps the logged-in user's id in the session.
SESSION_USER_KEY = "_user_id"

access_log = logging.getLogger("app.access")

# Processors that give every line its common fields; structlog's own loggers run them first,
# the standard library's records get them in the formatter (its foreign_pre_chain).
COMMON_FIELDS: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time (pytest swaps it between tests)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def build_formatter(log_format: str = "json") -> structlog.stdlib.ProcessorFormatter:
    """The one formatter: JSON lines, or structlog's console lines for a developer's terminal."""
    if log_format not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {log_format!r}")
    renderer: Processor = (
        structlog.processors.JSONRenderer(serializer=_json_line)
        if log_format == "json"
        # A plain traceback: rich's would print local variables, passwords among them.
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*COMMON_FIELDS, structlog.stdlib.ExtraAdder(), _drop_formatted_text],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # The traceback becomes text before redaction, so that it is redacted too.
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
    )


def _json_line(event_dict: EventDict, **options: Any) -> str:
    # orjson: every request writes a line, and the standard library's encoder took a fifth of
    # the line's cost. What orjson refuses (an integer past 64 bits) goes the standard way.
    try:
        return orjson.dumps(event_dict, default=options["default"], option=_ORJSON).decode()
    except TypeError:
        return json.dumps(event_dict, **options)


_ORJSON = orjson.OPT_NON_STR_KEYS


def _drop_formatted_text(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    # Another handler's formatter may have run first and left these on the record, where
    # ExtraAdder takes them for extras; the message is the event already.
    event_dict.pop("message", None)
    event_dict.pop("asctime", None)
    return event_dict


def log_level(name: str) -> int:
    """The standard library's number for a LOG_LEVEL such as ``INFO`` or ``debug``."""
    level = logging.getLevelNamesMapping().get(name.upper())
    if level is None:
        raise ValueError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, not {name!r}")
    return level


def configure_logging(level_name: str, log_format: str) -> None:
    """Send every logger's records through the formatter to stderr, once per process."""
    level, formatter = log_level(level_name), build_formatter(log_format)
    root = logging.getLogger()
    handler = next((h for h in root.handlers if h.name == HANDLER_NAME), None)
    if handler is None:
        handler = StderrHandler()
        handler.name = HANDLER_NAME
        root.addHandler(handler)
    handler.setFormatter(formatter)
    root.setLevel(level)
    # Stripe's SDK logs whole request and response bodies at DEBUG: customers' details, and a
    # new webhook endpoint's signing secret. Its INFO lines (calls, retries) are kept.
    logging.getLogger("stripe").setLevel(max(level, logging.INFO))
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *COMMON_FIELDS,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def gunicorn_logconfig() -> dict[str, Any]:
    """gunicorn's ``logconfig_dict``: its own lines through the same formatter, to stderr.

    gunicorn configures logging before it loads the app; the app's ``init_logging`` then finds
    this handler by its name and keeps it.
    """
    level = os.environ.get("LOG_LEVEL") or Config.LOG_LEVEL
    log_format = os.environ.get("LOG_FORMAT") or Config.LOG_FORMAT
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {HANDLER_NAME: {"()": build_formatter, "log_format": log_format}},
        "handlers": {HANDLER_NAME: {"()": StderrHandler, "formatter": HANDLER_NAME}},
        "root": {"level": level.upper(), "handlers": [HANDLER_NAME]},
        "loggers": {
            # gunicorn's handlers go; its lines reach the root's.
            "gunicorn.error": {"level": level.upper(), "handlers": [], "propagate": True},
            # The app writes one access line per request, with its request id.
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
    }


class GunicornLogger(GunicornBaseLogger):
    """gunicorn's logger (gunicorn.conf.py's ``logger_class``), for an access log it does not
    write: the app writes one line per request, with its request id (finish_request). Given a
    logging configuration, gunicorn works out its own access line's fields for every request,
    and then drops the line at the level of gunicorn_logconfig's ``gunicorn.access``."""

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if self.access_log.isEnabledFor(logging.INFO):
            super().access(resp, req, environ, request_time)


def init_logging(app: Flask) -> None:
    """Configure the logs from LOG_LEVEL and LOG_FORMAT, and give each request an id."""
    configure_logging(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])
    # Flask's own handler would print the app's lines a second time, unformatted.
    app.logger.removeHandler(default_handler)
    app.before_request(start_request)
    app.after_request(finish_request)
    app.teardown_request(end_request)
    user_logged_in.connect(_bind_logged_in_customer)


def request_id_from(header: str | None) -> str:
    """The caller's X-Request-ID when it is a sane one, else a new id."""
    if header and SANE_REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def bind_customer(reference_id: str) -> None:
    """Name the customer (its customerReferenceId) on the rest of the request's lines."""
    structlog.contextvars.bind_contextvars(customer=reference_id)


def start_request() -> None:
    """Bind the request id, and the logged-in customer, to every line the request logs."""
    structlog.contextvars.clear_contextvars()
    g.request_id = request_id_from(request.headers.get("X-Request-ID"))
    g.request_started = time.perf_counter()
    structlog.contextvars.bind_contextvars(request_id=g.request_id)
    # Only a session that names a user costs a query (API calls carry no session at all).
    if SESSION_USER_KEY in session and current_user.is_authenticated:
        bind_customer(current_user.customer.reference_id)


def finish_request(response: Response) -> Response:
    """Return the request id, and write the request's access line."""
    response.headers["X-Request-ID"] = g.request_id
    duration_ms = round((time.perf_counter() - g.request_started) * 1000, 1)
    access_log.info(
        "%s %s %s %.1f ms",
        request.method,
        request.path,
        response.status_code,
        duration_ms,
        extra={
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": duration_ms,
        },
    )
    return response


def end_request(_error: BaseException | None) -> None:
    """Lines logged after the request (by the server, in the same thread) are not its lines."""
    structlog.contextvars.clear_contextvars()


def _bind_logged_in_customer(_app: Flask, user: Any, **_extra: Any) -> None:
    bind_customer(user.customer.reference_id)


# Redaction: the last line of defence, on every line's fields and message.

REDACTED = "[REDACTED]"
SENSITIVE_KEY = re.compile(
    r"pass(word|wd)|secret|api[-_]?key|authori[sz]ation|cookie|signature|(^|[-_])token$"
    r"|card|cvc",
    re.IGNORECASE,
)
SECRET_TEXT = re.compile(
    r"\b[sr]k_(live|test)_\w+"  # Stripe secret and restricted keys
    r"|\bwhsec_\w+"  # webhook signing secrets
    r"|\btg_key_[\w-]+"  # Tollgate's API keys (app/api/keys.py's KEY_PREFIX)
    r"|\bt=\d+(,v\d=[0-9a-f]+)+"  # a Stripe-Signature header's value
    r"|\b[Bb]earer\s+\S+"
    r"|\bsession=[^;\s\"']+"  # Flask's session cookie
)
# Text that SECRET_TEXT can match holds one of these: looking for them first is several times
# quicker than the expression, and every request writes a line.
SECRET_MARKS = ("k_", "key_", "whsec_", "v1=", "earer", "session=")
# 13 to 19 digits, maybe grouped by spaces or dashes, not part of a longer word or number: a card
# number if it passes the Luhn check.
DIGIT_RUN = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
# The fields this module writes itself.
OWN_FIELDS = frozenset({"timestamp", "level", "logger"})


def _passes_luhn(digits: str) -> bool:
    total = 0
    for position, digit in enumerate(int(d) for d in reversed(digits)):
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return REDACTED if _passes_luhn(digits) else match.group()


def _masked_text(text: str) -> str:
    for mark in SECRET_MARKS:
        if mark in text:
            text = SECRET_TEXT.sub(REDACTED, text)
            break
    return DIGIT_RUN.sub(_mask_card, text)


@functools.lru_cache(maxsize=1024)
def _is_sensitive(key: str) -> bool:
    # Lines carry few distinct keys, the same ones over and over.
    return SENSITIVE_KEY.search(key) is not None


def _redacted(key: object, value: Any) -> Any:
    if isinstance(key, str) and _is_sensitive(key):
        return REDACTED
    if isinstance(value, str):
        return _masked_text(value)
    if isinstance(value, dict):
        return {k: _redacted(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(None, item) for item in value]
    return value


def redact(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Mask the values of secret-sounding keys, and secrets and card numbers in any text."""
    return {
        key: value if key in OWN_FIELDS else _redacted(key, value)
        for key, value in event_dict.items()
    }
