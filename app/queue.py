"""The worker's queue (Huey): created here without storage, given its storage by ``init_queue``.

The queue only carries what to do next; the database says what is owed (the overage outbox,
the event log), so a task lost with its worker is redone by the next sweep. Embedded, it is a
SQLite file under instance/ that needs nothing else; with ``TOLLGATE_QUEUE_URL=redis://...``
it is Redis, shared by the workers of several hosts.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from huey import Huey
from huey.storage import MemoryStorage, RedisStorage, SqliteStorage
from redis import ConnectionPool

__all__ = ["QueueUnavailable", "init_queue", "queue", "queue_depth"]

# Periodic tasks' times are UTC (the schedule in app/tasks.py says why each runs when it does).
queue = Huey("tollgate", storage_class=MemoryStorage, utc=True, results=False)


class QueueUnavailable(Exception):
    """The queue's storage did not answer (Redis down, the SQLite file unreadable)."""


def init_queue(app: Flask) -> None:
    """Give the queue the storage that ``TOLLGATE_QUEUE_URL`` names (SQLite under instance/)."""
    url = (
        app.config["TOLLGATE_QUEUE_URL"] or f"sqlite:///{Path(app.instance_path) / 'queue.sqlite3'}"
    )
    app.config["TOLLGATE_QUEUE_URL"] = url
    # The name prefixes the queue's keys, so several Tollgates can share one Redis.
    queue.name = app.config["TOLLGATE_QUEUE_NAME"]
    queue.storage = storage_for(url, queue.name)


def storage_for(url: str, name: str) -> SqliteStorage | RedisStorage:
    """The Huey storage for a ``sqlite:///path`` or ``redis://host:port/db`` URL."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        # Timeouts longer than the consumer's blocking read (1 s), short enough that a web
        # process asking /readyz does not hang on a Redis that is gone.
        pool = ConnectionPool.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        return RedisStorage(name, connection_pool=pool)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteStorage(name, filename=str(path))
    raise ValueError(f"TOLLGATE_QUEUE_URL must be redis://... or sqlite:///..., not {url!r}")


def queue_depth() -> int:
    """Tasks waiting in the queue; raises QueueUnavailable if its storage does not answer."""
    try:
        return int(queue.pending_count())
    except Exception as exc:
        raise QueueUnavailable(str(exc)) from exc
