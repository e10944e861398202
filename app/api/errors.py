"""The API's error answers: ``{"error": {"code", "message"}}`` with a fitting 4xx status."""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

from flask import current_app, jsonify, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    """A refusal with an HTTP status, a stable code for programs and a message for people."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(error: ApiError) -> tuple[Response, int]:
    """The JSON body and status of an ApiError."""
    return jsonify({"error": {"code": error.code, "message": error.message}}), error.status


def describe_validation(exc: ValidationError) -> str:
    """pydantic's errors as ``field: problem; field: problem``."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}"
        for error in exc.errors()
    )


def request_body(limit: int, what: str) -> bytes:
    """The body, or a 413 past ``limit`` bytes, whether it came with a length or chunked.

    A chunked body has no length to refuse up front, and the server cuts it at
    ``MAX_CONTENT_LENGTH``: it is read to its end, so an oversized upload is refused whole,
    never cut at the limit and half-used.
    """
    too_large = ApiError(413, "too_large", f"Send at most {limit // (1024 * 1024)} MB of {what}.")
    if (request.content_length or 0) > limit:
        raise too_large
    parts, size = [], 0
    try:
        while part := request.stream.read(64 * 1024):
            size += len(part)
            if size > limit:
                raise too_large
            parts.append(part)
    except RequestEntityTooLarge:  # more than MAX_CONTENT_LENGTH came, chunked
        raise too_large from None
    return b"".join(parts)


def json_body() -> Any:
    """The request's JSON document, or a 4xx that says what is wrong with it.

    Strict where the standard library is lenient: UTF-8 only (it guesses UTF-16 and -32 too),
    no NaN, Infinity or numbers past a float's range, and no text a database cannot keep (a NUL
    character, half of a surrogate pair).
    """
    if not request.is_json:
        raise ApiError(
            415, "unsupported_media_type", "Send a JSON body with Content-Type: application/json."
        )
    body = request_body(current_app.config["MAX_CONTENT_LENGTH"], "JSON")
    try:
        payload = json.loads(
            body.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite_float
        )
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_json", "The body is not UTF-8.") from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "The body nests too deeply to read.") from None
    except ValueError as exc:
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {exc}") from None
    # A NUL or a lone surrogate can only come as a \u escape (raw, strict JSON and UTF-8
    # refuse them), so a body without one is not walked: batches are ingestion's hot path.
    if b"\\u" in body and not _keepable(payload):
        raise ApiError(400, "invalid_json", UNKEEPABLE_TEXT)
    return payload


UNKEEPABLE_TEXT = "Text may not hold a NUL character or half of a surrogate pair."


def keepable_text(text: str) -> bool:
    """Whether a database can keep ``text``: no NUL, no lone surrogate (not valid UTF-8)."""
    if text.isascii():
        return "\x00" not in text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _keepable(value: Any) -> bool:
    if isinstance(value, str):
        return keepable_text(value)
    if isinstance(value, dict):
        return all(keepable_text(key) and _keepable(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_keepable(item) for item in value)
    return True


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text[:40]} is out of range")
    return number


def parse(model: type[M], payload: Any) -> M:
    """Validate ``payload`` against ``model``; a mistake is a 400 naming the field."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise ApiError(400, "invalid_request", describe_validation(exc)) from None
