"""Small helpers every resource module shares: metadata, updates, retrieve and list."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..context import Ctx, snapshot
from ..errors import StripeError
from ..listing import Stored, matching, paginate

ADDRESS_FIELDS = ("city", "country", "line1", "line2", "postal_code", "state")


def merged_metadata(current: Mapping[str, str], sent: Any) -> dict[str, str]:
    """Stripe merges metadata keys; an empty value unsets a key, an empty hash unsets all."""
    if sent == "":
        return {}
    result = dict(current)
    for key, value in sent.items():
        if value == "":
            result.pop(key, None)
        else:
            result[key] = value
    return result


def assign(obj: dict[str, Any], params: Mapping[str, Any], fields: Iterable[str]) -> None:
    """Copy the listed params onto the object; `metadata` merges, "" clears a field."""
    for field in fields:
        if field not in params:
            continue
        value = params[field]
        if field == "metadata":
            obj["metadata"] = merged_metadata(obj.get("metadata") or {}, value)
        else:
            obj[field] = None if value == "" else value


def update_with_event(
    ctx: Ctx,
    obj: dict[str, Any],
    event_type: str,
    params: Mapping[str, Any],
    fields: Iterable[str],
) -> dict[str, Any]:
    """Apply an update from params and emit `*.updated` with previous_attributes if it moved."""
    updated = snapshot(obj)
    assign(updated, params, fields)
    return change(ctx, obj, event_type, **updated)


def deleted(obj: dict[str, Any]) -> dict[str, Any]:
    """Stripe's reply to a DELETE."""
    return {"id": obj["id"], "object": obj["object"], "deleted": True}


def retrieve(object_type: str) -> Callable[..., dict[str, Any]]:
    """A GET-by-id handler for any object type."""

    def handler(ctx: Ctx, params: dict[str, Any], object_id: str) -> dict[str, Any]:
        return ctx.fetch(object_type, object_id)

    return handler


def lister(object_type: str, url: str, *fields: str) -> Callable[..., dict[str, Any]]:
    """A list handler filtering on the named fields (and `created`), as `matching` does."""

    def handler(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
        return paginate(Stored(ctx.store, object_type), params, url, matching(params, *fields))

    return handler


def change(ctx: Ctx, obj: dict[str, Any], event_type: str, **fields: Any) -> dict[str, Any]:
    """Set fields, save, and emit `event_type` with previous_attributes if anything changed."""
    before = snapshot(obj)
    obj.update(fields)
    ctx.save(obj)
    if obj != before:
        ctx.emit(event_type, obj, before)
    return obj


def refuse_unsupported(params: Mapping[str, Any], supported: Iterable[str]) -> None:
    """Stripe accepts these parameters but the sandbox does not model them: say so, loudly."""
    for name in params:
        if name not in supported and name != "expand":
            raise StripeError(f"The Stripe sandbox does not implement `{name}` here.", param=name)
