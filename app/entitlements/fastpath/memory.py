"""One worker's memory of check reads: bounded, with expiry; what keeps it current is the
database's (postgres_cache.py, sqlite_cache.py)."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from flask import current_app

# A bound on memory (an entry takes about a kilobyte): past it, the oldest entries go first.
MAX_ENTRIES = 100_000

# Where the app keeps its check cache (the package's init_check_cache puts it there).
EXTENSION = "tollgate.check_cache"

Key = tuple[str, str, str]  # (API key hash, customer reference id, feature key)
Row = TypeVar("Row")


@dataclass(frozen=True, slots=True)
class _Entry(Generic[Row]):
    row: Row
    valid_until: datetime | None


class CheckMemory(ABC, Generic[Row]):
    """One worker's cached check reads, at most MAX_ENTRIES of them (the oldest go first).
    What keeps them current is the database's: see CheckCache and SqliteCheckCache."""

    def __init__(self) -> None:
        self._entries: dict[Key, _Entry[Row]] = {}
        # Scopes of API keys found unrevoked, by hash: the other API calls' one lookup before
        # they start.
        self._valid_keys: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()
        self.hits = 0  # checks answered from memory

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key, at: datetime) -> Row | None:
        """The row cached for ``key``, if it may be used at ``at``; None to read the database."""
        if not self._answers_now():
            return None
        row = self._lookup(key, at)
        if row is None or not self._may_answer_with(row):
            return None
        self.hits += 1
        return row

    def key_scopes(self, key_hash: str) -> frozenset[str] | None:
        """The scopes of the API key stored as ``key_hash``, found unrevoked and still so; None
        when not known (then ask the database)."""
        return self._valid_keys.get(key_hash) if self._answers_now() else None

    @abstractmethod
    def ticket(self) -> int | None:
        """Taken before reading: hand it back to ``put`` or ``remember_key``."""

    def put(self, ticket: int | None, key: Key, row: Row, valid_until: datetime | None) -> None:
        """Keep ``row``, read for ``key`` after ``ticket`` was taken, unless anything changed."""
        with self._lock:
            if self._may_keep(ticket) and self._may_answer_with(row):
                self._keep(key, row, valid_until)

    def remember_key(self, ticket: int | None, key_hash: str, scopes: frozenset[str]) -> None:
        """Keep that the API key stored as ``key_hash`` was found unrevoked, with ``scopes``,
        after ``ticket`` was taken, unless anything changed: a changed or deleted key drops
        every entry."""
        with self._lock:
            if self._may_keep(ticket):
                self._valid_keys[key_hash] = scopes

    @abstractmethod
    def stop(self) -> None:
        """Let go of what keeps the memory current (the tests' servers stop with their app)."""

    @abstractmethod
    def _answers_now(self) -> bool:
        """Whether the memory may answer now (else every question goes to the database)."""

    @abstractmethod
    def _may_keep(self, ticket: int | None) -> bool:
        """Whether what was read after ``ticket`` was taken may be kept (the caller holds the
        lock)."""

    def _may_answer_with(self, row: Row) -> bool:
        """Whether ``row`` may answer from memory now, or be kept there."""
        return True

    def _lookup(self, key: Key, at: datetime) -> Row | None:
        entry = self._entries.get(key)
        if entry is None or (entry.valid_until is not None and at >= entry.valid_until):
            return None
        return entry.row

    def _keep(self, key: Key, row: Row, valid_until: datetime | None) -> None:
        """Store an entry (the caller holds the lock)."""
        if len(self._entries) >= MAX_ENTRIES:
            self._drop(next(iter(self._entries)))  # the oldest
        self._entries[key] = _Entry(row, valid_until)

    def _drop(self, key: Key) -> None:
        """Drop one entry (the caller holds the lock)."""
        del self._entries[key]

    def _clear(self) -> None:
        """Drop every entry (the caller holds the lock)."""
        self._entries.clear()
        self._valid_keys.clear()


def check_cache() -> CheckMemory[Any] | None:
    """The current app's check cache, if it has one."""
    cache: CheckMemory[Any] | None = current_app.extensions.get(EXTENSION)
    return cache
