"""Compare an object the sandbox sends with Stripe's published sample and the SDK's types.

The sample (`fixtures3.json`) says which fields Stripe sends by default; the SDK's annotations say
which of them may be null and which nested values are objects (to recurse into) rather than
maps (metadata), expandable ids or untyped hashes.
"""

from __future__ import annotations

import importlib
import types
import typing
from typing import Any

import stripe
from stripe._list_object import ListObject
from stripe._object_classes import get_object_class
from stripe._stripe_object import StripeObject

_NONE = type(None)


def sdk_class(object_type: str) -> type[StripeObject]:
    """The SDK's class for an API object type (`checkout.session` → `stripe.checkout.Session`)."""
    return get_object_class("V1", object_type)


def _resolve(name: str, owner: type) -> Any:
    # The SDK annotates types from other modules as strings (imported only for type checkers).
    found = getattr(owner, name, None) or getattr(stripe, name, None)
    if found is None:
        module = importlib.import_module(owner.__module__)
        found = getattr(module, name, None)
    if found is None:
        for package in ("checkout", "billing", "billing_portal", "test_helpers"):
            found = getattr(getattr(stripe, package), name, None)
            if found is not None:
                break
    return found


def _arms(annotation: Any, owner: type) -> list[Any]:
    if isinstance(annotation, str):
        annotation = typing.ForwardRef(annotation)
    if isinstance(annotation, typing.ForwardRef):
        return [_resolve(annotation.__forward_arg__, owner)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [arm for a in typing.get_args(annotation) for arm in _arms(a, owner)]
    return [annotation]


def field_types(cls: type) -> dict[str, list[Any]]:
    """Each field the SDK declares on `cls`, with the arms of its (union) type."""
    declared: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        declared.update(getattr(klass, "__annotations__", {}))
    return {
        name: _arms(annotation, cls)
        for name, annotation in declared.items()
        if not name.startswith("_")
        and typing.get_origin(annotation) is not typing.ClassVar
        and annotation is not typing.ClassVar
    }


def _object_arm(arms: list[Any]) -> tuple[str, type] | None:
    """("object"|"list"|"array", class) when the field nests a typed object to check inside."""
    if str in arms:
        return None  # an expandable id: checked where it is an object of its own
    for arm in arms:
        origin = typing.get_origin(arm)
        if origin is ListObject:
            return _typed("list", typing.get_args(arm)[0])
        if origin in (list, typing.List):  # noqa: UP006 - the SDK annotates with typing.List
            return _typed("array", typing.get_args(arm)[0])
        if _is_object_class(arm):
            return "object", arm
    return None


def _typed(kind: str, item: Any) -> tuple[str, type] | None:
    found = [arm for arm in _arms(item, StripeObject) if _is_object_class(arm)]
    return (kind, found[0]) if len(found) == 1 else None


def _is_object_class(arm: Any) -> bool:
    return (
        isinstance(arm, type)
        and issubclass(arm, StripeObject)
        and arm.__name__ not in ("StripeObject", "UntypedStripeObject")
    )


def problems(sample: dict[str, Any], sent: dict[str, Any], cls: type, path: str) -> list[str]:
    """What `sent` lacks against `sample`, nulls the SDK does not allow, and undeclared fields,
    recursing into the nested objects the sample has."""
    declared = field_types(cls)
    found = [f"{path}.{name}: missing" for name in sample if name not in sent]
    # A field of the sample the SDK no longer declares (an invoice's `subscription`) is still sent.
    found += [
        f"{path}.{name}: not a field of {cls.__name__}"
        for name in sent
        if name not in declared and name not in sample
    ]
    for name, value in sent.items():
        arms = declared.get(name)
        if arms is None:
            continue
        if value is None:
            if _NONE not in arms and name in sample:
                found.append(f"{path}.{name}: null, but the SDK never expects null")
            continue
        nested, example = _object_arm(arms), sample.get(name)
        if nested is None or not isinstance(example, dict | list) or not example:
            continue  # an empty sample (`shipping: {}`) shows no fields to compare
        kind, item_cls = nested
        here = f"{path}.{name}"
        if kind == "object" and isinstance(example, dict) and isinstance(value, dict):
            found += problems(example, value, item_cls, here)
        elif kind == "list" and example.get("data") and isinstance(value, dict):
            for n, item in enumerate(value["data"]):
                found += problems(example["data"][0], item, item_cls, f"{here}.data[{n}]")
        elif kind == "array" and example and isinstance(example[0], dict):
            for n, item in enumerate(value):
                found += problems(example[0], item, item_cls, f"{here}[{n}]")
    return found


def beyond_sample(sample: dict[str, Any], sent: dict[str, Any], cls: type, path: str) -> set[str]:
    """Paths of the fields `sent` has that the sample does not (SDK-declared, newer or expanded)."""
    declared = field_types(cls)
    extra = {f"{path}.{name}" for name in sent if name not in sample}
    for name, value in sent.items():
        nested, example = _object_arm(declared.get(name, [])), sample.get(name)
        if nested is None or value is None or not isinstance(example, dict | list) or not example:
            continue
        kind, item_cls = nested
        if kind == "object" and isinstance(example, dict):
            extra |= beyond_sample(example, value, item_cls, f"{path}.{name}")
        elif kind == "list" and example.get("data"):
            for item in value["data"]:
                extra |= beyond_sample(example["data"][0], item, item_cls, f"{path}.{name}[]")
        elif kind == "array" and example and isinstance(example[0], dict):
            for item in value:
                extra |= beyond_sample(example[0], item, item_cls, f"{path}.{name}[]")
    return extra
