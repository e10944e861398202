"""The fill's unit of work: the sandbox's own code, writing without sending events."""

from __future__ import annotations

import base64
import random
import time
from collections import Counter
from typing import Any

from ..context import Ctx
from ..store import Store

# Base64 digits that are not letters or figures, as letters: an id is alphanumeric.
_ALPHANUMERIC = bytes.maketrans(b"+/", b"xZ")


class Quiet(Ctx):
    """A unit of work that sends no event: the filled objects predate Tollgate's endpoint."""

    def __init__(self, store: Store, base_url: str) -> None:
        super().__init__(store, base_url)
        self.made: Counter[str] = Counter()
        # Subscriptions by the status their history left them in.
        self.statuses: Counter[str] = Counter()
        # Not the seed's: ids differ between fills, what happens follows the seed.
        self._ids = random.Random()  # noqa: S311 - ids, not secrets
        # Ids of this fill follow those of any fill before it.
        self._made_ids = time.time_ns() // 1000

    def emit(
        self, event_type: str, obj: dict[str, Any], previous: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Send nothing."""
        return {}

    def new_id(self, prefix: str) -> str:
        """A new id in Stripe's form, which sorts by the order objects were made in (a version
        figure, a counter, then random figures): the store's index of ids then grows at its
        end, where random ids would make a fill of a million objects touch all of it."""
        self._made_ids += 1
        drawn = base64.b64encode(self._ids.randbytes(8)).translate(_ALPHANUMERIC)
        return f"{prefix}_1{self._made_ids:013x}{drawn[:10].decode()}"

    def add(self, *objects: dict[str, Any]) -> None:
        """Write new objects, whole as the builders make them."""
        for obj in objects:
            self.made[obj["object"]] += 1
            self.store.put(obj)

    def count(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Count an object an API handler made (and saved)."""
        self.made[obj["object"]] += 1
        return obj
