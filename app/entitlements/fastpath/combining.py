"""Group commit: the single usage events that reach a worker while it is recording others are
recorded together, as one batch in one transaction.

Recording an event costs about a dozen round trips to the database (lock the customer, read
its lots, subscription and counters, insert, upsert, commit), nearly all of them the same for
one event as for a hundred. The first request to arrive records its event at once; those that
arrive meanwhile wait for it to finish, and the first of them then records all of theirs in
one batch, with every rule of a batch (app/entitlements/recording/). Nothing waits for a group
to fill: an event waits at most for the group before its own.

Trade: events of different callers share a transaction, so a failure of the database (a lock
wait past its limit, a lost connection) fails every event of the group, and each of their
callers gets the same error and retries, as a batch's caller would; an event refused for its
own reasons refuses only itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


@dataclass(eq=False)
class _Waiting(Generic[Item, Outcome]):
    item: Item
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Outcome | None = None
    failure: BaseException | None = None
    leads: bool = False


class GroupCommit(Generic[Item, Outcome]):
    """Items submitted from many threads, recorded a group at a time by one of them."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._queue: list[_Waiting[Item, Outcome]] = []
        self._recording = False

    def submit(self, item: Item, record: Callable[[list[Item]], list[Outcome]]) -> Outcome:
        """Record ``item`` with whatever else is waiting, by ``record`` (one outcome per item,
        in order); its outcome, or what ``record`` raised."""
        waiting: _Waiting[Item, Outcome] = _Waiting(item)
        with self._lock:
            self._queue.append(waiting)
            if not self._recording:
                self._recording = True
                waiting.leads = True
        if not waiting.leads:
            waiting.done.wait()  # for its outcome, or to be told to lead the next group
        if waiting.leads:
            self._lead(record)
        if waiting.failure is not None:
            raise waiting.failure
        return waiting.outcome  # type: ignore[return-value]  # set with done

    def _lead(self, record: Callable[[list[Item]], list[Outcome]]) -> None:
        """Record the waiting items (this thread's first), then hand the lead to the next."""
        with self._lock:
            group = self._queue[: self._limit]
            del self._queue[: self._limit]
        try:
            outcomes = record([waiting.item for waiting in group])
            for waiting, outcome in zip(group, outcomes, strict=True):
                waiting.outcome = outcome
        except BaseException as exc:  # every caller of the group hears it, and none is lost
            for waiting in group:
                waiting.failure = exc
        finally:
            for waiting in group:
                waiting.done.set()
            with self._lock:
                if self._queue:
                    following = self._queue[0]
                    following.leads = True
                    following.done.set()
                else:
                    self._recording = False
