"""Decode Stripe's bracket form encoding and check it against the SDK's own parameter types.

Which parameters a call accepts comes from the TypedDicts the SDK generates from Stripe's
OpenAPI spec (`stripe.params`), so the sandbox refuses exactly what Stripe would refuse.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Union
from urllib.parse import parse_qsl

from stripe._request_options import RequestOptions
from stripe._stripe_context import StripeContext
from typing_extensions import is_typeddict

from .errors import StripeError, missing_parameter, unknown_parameter

# Request options (api_key, idempotency_key...) are mixed into every params TypedDict by the
# SDK but travel as headers, never as form fields.
_REQUEST_OPTION_KEYS = frozenset(RequestOptions.__annotations__)
# Names the generated modules use only inside string annotations, without importing them.
_FORWARD_REF_NAMES = {"StripeContext": StripeContext, "Mapping": Mapping}


def parse_form(encoded: str) -> dict[str, Any]:
    """Turn `a[b][0][c]=1&expand[]=x` into nested dicts; list indexes stay string keys."""
    root: dict[str, Any] = {}
    for raw_key, value in parse_qsl(encoded, keep_blank_values=True):
        head, _, rest = raw_key.partition("[")
        parts = [head] + (list(rest.rstrip("]").split("][")) if rest else [])
        node = root
        for i, part in enumerate(parts):
            if part == "":  # `key[]` appends, as curl users write lists
                part = str(len(node))
            if i == len(parts) - 1:
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise StripeError(f"Invalid value for {raw_key}", param=raw_key)
                node = child
    return root


@functools.cache
def _fields(params_class: type) -> dict[str, Any]:
    hints = typing.get_type_hints(params_class, localns=_FORWARD_REF_NAMES)
    return {k: v for k, v in hints.items() if k not in _REQUEST_OPTION_KEYS}


def validate(params_class: type, raw: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Check `raw` against a `stripe.params` TypedDict and coerce strings to the declared types."""
    fields = _fields(params_class)
    result: dict[str, Any] = {}
    for key, value in raw.items():
        name = f"{prefix}[{key}]" if prefix else key
        if key not in fields:
            raise unknown_parameter(name)
        result[key] = _coerce(value, fields[key], name)
    for key in getattr(params_class, "__required_keys__", ()):
        if key not in result and key not in _REQUEST_OPTION_KEYS:
            raise missing_parameter(f"{prefix}[{key}]" if prefix else key)
    return result


def _coerce(value: Any, annotation: Any, name: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        return _coerce_union(value, typing.get_args(annotation), name)
    if origin is Literal:
        allowed = [str(a) for a in typing.get_args(annotation)]
        if value not in allowed:
            raise StripeError(f"Invalid {name}: must be one of {', '.join(allowed)}", param=name)
        return value
    if origin in (list, typing.List):  # noqa: UP006 - the SDK annotates with typing.List
        return _coerce_list(value, typing.get_args(annotation)[0], name)
    if origin in (dict, typing.Dict) or _is_untyped_object(annotation):  # noqa: UP006
        if not isinstance(value, dict):
            raise StripeError(f"Invalid object: {name} must be a hash", param=name)
        return {str(k): v for k, v in value.items()}
    if is_typeddict(annotation):
        if not isinstance(value, dict):
            raise StripeError(f"Invalid object: {name} must be a hash", param=name)
        return validate(annotation, value, name)
    return _coerce_scalar(value, annotation, name)


def _is_untyped_object(annotation: Any) -> bool:
    return getattr(typing.get_origin(annotation) or annotation, "__name__", "") == (
        "UntypedStripeObject"
    )


def _coerce_union(value: Any, arms: tuple[Any, ...], name: str) -> Any:
    # Try structured arms for hashes and scalar arms for strings, so the error reported is the
    # one about the shape the caller meant (e.g. an unknown key inside a nested hash).
    structured = [a for a in arms if _is_structured(a)]
    candidates = structured if isinstance(value, dict) and structured else arms
    error: StripeError | None = None
    for arm in candidates:
        try:
            return _coerce(value, arm, name)
        except StripeError as exc:
            if exc.code == "parameter_unknown":
                raise
            error = error or exc
    assert error is not None
    raise error


def _is_structured(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    return (
        is_typeddict(annotation)
        or origin in (list, dict, typing.List, typing.Dict)  # noqa: UP006
        or _is_untyped_object(annotation)
    )


def _coerce_list(value: Any, item_type: Any, name: str) -> list[Any]:
    if not isinstance(value, dict) or not all(k.isdigit() for k in value):
        raise StripeError(f"Invalid array: {name} must be an array", param=name)
    ordered = sorted(value.items(), key=lambda kv: int(kv[0]))
    return [_coerce(v, item_type, f"{name}[{k}]") for k, v in ordered]


def _coerce_scalar(value: Any, annotation: Any, name: str) -> Any:
    if isinstance(value, dict):
        raise StripeError(f"Invalid {name}: expected a scalar, got a hash", param=name)
    if annotation is bool:
        if value not in ("true", "false"):
            raise StripeError(f"Invalid boolean: {value}", param=name)
        return value == "true"
    if annotation is int:
        try:
            return int(value)
        except ValueError:
            raise StripeError(
                f"Invalid integer: {value}", code="parameter_invalid_integer", param=name
            ) from None
    if annotation in (float, Decimal):
        try:
            return str(Decimal(value))
        except InvalidOperation:
            raise StripeError(f"Invalid decimal: {value}", param=name) from None
    return value
