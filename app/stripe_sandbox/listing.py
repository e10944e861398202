"""Stripe's list envelope and cursor pagination, shared by every list endpoint."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .context import public
from .errors import StripeError


def list_object(url: str, data: list[dict[str, Any]], has_more: bool = False) -> dict[str, Any]:
    """A `{"object": "list"}` envelope."""
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def paginate(
    objects: Iterable[dict[str, Any]],
    params: Mapping[str, Any],
    url: str,
    keep: Callable[[dict[str, Any]], bool] = lambda _: True,
) -> dict[str, Any]:
    """One page of `objects` (newest first) after the list filters and cursors in `params`."""
    items = [public(o) for o in objects if not o.get("deleted") and keep(o)]
    limit = params.get("limit", 10)
    if not 1 <= limit <= 100:
        # Stripe's documented range for `limit`.
        raise StripeError("Invalid limit: must be between 1 and 100", param="limit")
    ids = [o["id"] for o in items]
    if "starting_after" in params:
        start = _cursor(ids, params["starting_after"], "starting_after") + 1
        page = items[start : start + limit]
        has_more = start + limit < len(items)
    elif "ending_before" in params:
        end = _cursor(ids, params["ending_before"], "ending_before")
        page = items[max(0, end - limit) : end]
        has_more = end - limit > 0
    else:
        page, has_more = items[:limit], len(items) > limit
    return list_object(url, page, has_more)


def _cursor(ids: list[str], object_id: str, param: str) -> int:
    if object_id not in ids:
        raise StripeError(
            f"No such object: '{object_id}'", status=404, code="resource_missing", param=param
        )
    return ids.index(object_id)


def matching(params: Mapping[str, Any], *fields: str) -> Callable[[dict[str, Any]], bool]:
    """A list filter: each named field sent in `params` must equal the object's, plus `created`."""
    wanted = {f: params[f] for f in fields if f in params}

    def keep(obj: dict[str, Any]) -> bool:
        if "created" in params and not created_matches(obj["created"], params["created"]):
            return False
        return all(obj.get(f) == v for f, v in wanted.items())

    return keep


def created_matches(created: int, condition: Any) -> bool:
    """Stripe's `created` filter: an exact timestamp or a {gt, gte, lt, lte} range."""
    if isinstance(condition, int):
        return created == condition
    bounds = {k: int(v) for k, v in condition.items()}
    return (
        created > bounds.get("gt", created - 1)
        and created >= bounds.get("gte", created)
        and created < bounds.get("lt", created + 1)
        and created <= bounds.get("lte", created)
    )
