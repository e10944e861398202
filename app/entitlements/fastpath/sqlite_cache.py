"""SQLite: each worker's check memory, dropped whole at any commit (see the package)."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from urllib.parse import quote

from app.entitlements.fastpath.check_read import CheckRow
from app.entitlements.fastpath.memory import CheckMemory

log = logging.getLogger(__name__)


class SqliteCheckCache(CheckMemory[CheckRow]):
    """SQLite: one worker's cached check reads, kept while no commit has happened anywhere.

    The version is ``PRAGMA data_version`` on a connection of the worker's own that never
    writes, so that every commit is another connection's, this worker's included; SQLite
    changes it as soon as a commit is made, with no message to wait for.
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path
        self._watcher: sqlite3.Connection | None = None
        self._watching = threading.Lock()  # a sqlite3 connection serves one thread at a time
        self._pid: int | None = None
        self._stopped = False
        self._warned = False
        # The version the entries were read at.
        self._version: int | None = None

    def _answers_now(self) -> bool:
        version = self._current()
        if version is None:
            return False
        if version != self._version:
            with self._lock:
                self._clear()
                self._version = version
            return False
        return True

    def ticket(self) -> int | None:
        # The version a check's get() just saw (a miss follows one): any version seen before
        # the read will do, as _may_keep() explains, and this one costs no second question.
        return self._version

    def _may_keep(self, ticket: int | None) -> bool:
        # Kept with the entries of the version read before it. A read began after that, so
        # it is of that version or a later one; if later, the next check sees the version
        # move on and drops them all, this one with them.
        return ticket is not None and ticket == self._version

    def stop(self) -> None:
        with self._watching:
            self._stopped = True
            if self._watcher is not None:
                self._watcher.close()
                self._watcher = None

    def _current(self) -> int | None:
        """The database's version now; None when it cannot be told (then nothing is kept)."""
        with self._watching:
            if self._stopped:
                return None
            try:
                if self._pid != os.getpid():
                    # First use in this process (gunicorn forks after import): a connection of
                    # its own, never one inherited.
                    self._pid = os.getpid()
                    # Read-write, never create: a path that missed the database would watch a
                    # new empty file whose version never moves.
                    self._watcher = sqlite3.connect(
                        f"file:{quote(self._path)}?mode=rw",
                        uri=True,
                        isolation_level=None,
                        check_same_thread=False,
                    )
                    self._version = None
                if self._watcher is None:
                    return None
                row = self._watcher.execute("PRAGMA data_version").fetchone()
            except sqlite3.Error as exc:
                # Once, not at every check.
                (log.debug if self._warned else log.warning)(
                    "Entitlement check cache cannot read SQLite's version (%s);"
                    " checks read the database",
                    exc,
                )
                self._warned = True
                return None
        return int(row[0])


# Migration 0007: the counters' trigger stays silent in a transaction that sets this.
