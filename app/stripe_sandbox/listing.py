"""Stripe's list envelope and cursor pagination, shared by every list endpoint.

A page reads only as far as it needs: objects are walked in list order from the cursor and
filtered one at a time until the page and one more (for `has_more`) are found, so the last
page of 250,000 stored invoices costs what the first does.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .context import public
from .errors import StripeError
from .store import Store


@dataclass(frozen=True)
class Stored:
    """Every stored object of one type, as a list endpoint pages through them (lazily)."""

    store: Store
    object_type: str

    def walk(self, cursor: str | None, towards_newest: bool) -> Iterator[dict[str, Any]] | None:
        """The objects past `cursor` in list order, or None if there is no such object."""
        if cursor is None:
            return self.store.walk(self.object_type)
        position = self.store.position(cursor, self.object_type)
        if position is None:
            return None
        return self.store.walk(self.object_type, position, towards_newest=towards_newest)


def list_object(url: str, data: list[dict[str, Any]], has_more: bool = False) -> dict[str, Any]:
    """A `{"object": "list"}` envelope."""
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def paginate(
    objects: Stored | Sequence[dict[str, Any]],
    params: Mapping[str, Any],
    url: str,
    keep: Callable[[dict[str, Any]], bool] = lambda _: True,
) -> dict[str, Any]:
    """One page of `objects` (newest first) after the list filters and cursors in `params`;
    stored objects are read lazily, an in-memory list (an invoice's lines) as it is."""
    limit = params.get("limit", 10)
    if not 1 <= limit <= 100:
        # Stripe's documented range for `limit`.
        raise StripeError("Invalid limit: must be between 1 and 100", param="limit")
    # `ending_before` pages towards the newest: the `limit` objects just before the cursor.
    param = next((p for p in ("starting_after", "ending_before") if p in params), None)
    cursor = params[param] if param else None
    towards_newest = param == "ending_before"
    if isinstance(objects, Stored):
        walk = objects.walk(cursor, towards_newest)
    else:
        walk = _walk_list(objects, cursor, towards_newest)
    if walk is None:
        raise StripeError(
            f"No such object: '{cursor}'", status=404, code="resource_missing", param=param
        )
    wanted = (o for o in walk if not o.get("deleted") and keep(o))
    found = list(itertools.islice(wanted, limit + 1))
    page = found[:limit]
    if towards_newest:
        page.reverse()
    return list_object(url, [public(o) for o in page], len(found) > limit)


def _walk_list(
    objects: Sequence[dict[str, Any]], cursor: str | None, towards_newest: bool
) -> Iterator[dict[str, Any]] | None:
    if cursor is None:
        return iter(objects)
    ids = [o["id"] for o in objects]
    if cursor not in ids:
        return None
    at = ids.index(cursor)
    return reversed(objects[:at]) if towards_newest else iter(objects[at + 1 :])


def matching(params: Mapping[str, Any], *fields: str) -> Callable[[dict[str, Any]], bool]:
    """A list filter: each named field sent in `params`, and `created`, must equal the object's,
    or fall in the {gt, gte, lt, lte} range sent for it (Stripe's timestamp filters)."""
    wanted = {f: params[f] for f in ("created", *fields) if f in params}

    def keep(obj: dict[str, Any]) -> bool:
        return all(_matches(obj.get(f), condition) for f, condition in wanted.items())

    return keep


def _matches(value: Any, condition: Any) -> bool:
    if not isinstance(condition, dict):
        return bool(value == condition)
    if value is None:
        return False
    at, bounds = int(value), {k: int(v) for k, v in condition.items()}
    return (
        at > bounds.get("gt", at - 1)
        and at >= bounds.get("gte", at)
        and at < bounds.get("lt", at + 1)
        and at <= bounds.get("lte", at)
    )


def hide_test_clocks(params: Mapping[str, Any], *unless: str) -> Callable[[dict[str, Any]], bool]:
    """A list filter: Stripe leaves objects on a test clock out of a list unless one of the
    `unless` filters (the customer, the clock) is sent (API reference: list customers)."""
    shown = any(name in params for name in unless)
    return lambda obj: shown or obj.get("test_clock") is None
