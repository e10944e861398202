"""The API's error answers: ``{"error": {"code", "message"}}`` with a fitting 4xx status."""

from __future__ import annotations

from typing import Any, TypeVar

from flask import jsonify, request
from pydantic import BaseModel, ValidationError
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


def json_body() -> Any:
    """The request's JSON document, or a 400 that says what is wrong with it."""
    if not request.is_json:
        raise ApiError(
            415, "unsupported_media_type", "Send a JSON body with Content-Type: application/json."
        )
    payload = request.get_json(silent=True)
    if payload is None:
        raise ApiError(400, "invalid_json", "The body is not valid JSON.")
    return payload


def parse(model: type[M], payload: Any) -> M:
    """Validate ``payload`` against ``model``; a mistake is a 400 naming the field."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise ApiError(400, "invalid_request", describe_validation(exc)) from None
