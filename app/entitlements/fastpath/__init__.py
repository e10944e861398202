"""The fast path of the entitlement check and of usage batches: what it trades, in one place.

The rules live in the entitlements modules beside this package (access.py, checks.py, the
recording package); this package only makes their two hottest calls cheap, and says here
what each trick costs:

- ``check_read.py``: a check is one Core SELECT that checks the API key and reads the
  customer, its live subscription, the period's usage counter and its covering credits in one
  round trip, compiled once per shape and run by ``prepared.py`` on a DBAPI cursor the thread
  keeps (in autocommit on PostgreSQL). Trade: the statement is written for speed, not reuse,
  and a connection per thread lives outside the pool.
- ``gc_pause.py``: batches and CSV imports run with the cyclic garbage collector paused. Trade:
  cycles made meanwhile wait for the pause to end (or for 2 s of unbroken pause).
- ``combining.py``: single usage events that reach a worker while it records others are
  recorded together, one batch in one transaction (a group commit), each caller getting its
  own answer. Trade: a database failure fails every event of the group (each caller retries).
- The check cache, below. Trade: on PostgreSQL another worker may answer from memory for the
  time a notification takes to arrive; memory per worker (at most 100,000 entries).

The check cache. A check's one query costs more than the whole of the rest of the call: on
PostgreSQL it alone held checks below 60% of a bare Flask endpoint's throughput. Each worker
keeps what the query read (the customer's subscription, counter and credits, and that the API
key was valid) for each (key, customer, feature) it was asked about, and drops it when it may
have changed:

- Triggers (migration 0007) notify the ``tollgate_standing`` channel when a transaction that
  changed a customer, its subscriptions, credit pools or lots commits, naming the customers;
  any change to an API key drops everything. They fire whatever code or process made the
  change: the API, webhooks, the CLI, a psql session. Usage counters change with every event:
  Tollgate's recording tells their new values itself, in the statement that adds to them
  (``telling_counters``), and a change to them from anywhere else drops everything. A worker
  counts a told value in its entries of that customer, feature and period rather than
  dropping them: the check after a report still comes from memory, and counts the report.
- Other API calls look their key up once; a worker keeps the keys it found unrevoked with
  its entries, and drops them with everything else when any key changes.
- Each worker listens on a connection of its own. Before a check answers from memory, it
  applies whatever notifications have arrived; a thread applies them every 50 ms besides, so
  that they never pile up in a worker that only records usage.
- A worker's own commits send a marker through the same channel: until it has arrived (after
  the commit's own notifications), this worker's checks read the database. A caller that
  records usage and then checks on the same worker always sees its usage. A transaction that
  records usage names its customers (``changes_checks_of_only``): its marker holds up only
  their checks, so that the checks of others still come from memory while usage goes on.
  Trade: such a transaction must change nothing else a check reads; recording never does.
- On another worker, a check may answer from memory for as long as the notification takes to
  arrive: about 0.1 ms on an idle machine here, more under load. Recording usage never reads
  this cache, so limits and credits are enforced exactly; a check is a forecast either way,
  since usage may be recorded between the check and the use.
- Read entries are stored only if no notification arrived while the read ran, so a read that
  raced a commit is never kept; an entry that counted credits lasts until the first of them
  expires. While the worker is not listening (at start, after losing the connection, or when
  one of its own markers is 5 s late), every check reads the database, and the memory starts
  empty once it listens again.

SQLite has no notifications, but each connection can tell whether any other has committed
since it last looked (``PRAGMA data_version``, about 3 µs). There each worker keeps its checks'
reads only while no commit has happened anywhere since they were read: a dedicated connection
asks before every answer from memory, and any commit, by any process, drops them all. A check
on SQLite never lags a write, on any worker.

``TOLLGATE_CHECK_CACHE=off`` makes every check read the database.
"""

from __future__ import annotations

import os

from flask import Flask

from app.entitlements.fastpath.check_read import CheckRow
from app.entitlements.fastpath.memory import EXTENSION, CheckMemory
from app.entitlements.fastpath.postgres_cache import CheckCache
from app.entitlements.fastpath.sqlite_cache import SqliteCheckCache
from app.extensions import db


def init_check_cache(app: Flask) -> None:
    """Give the app its check cache, unless TOLLGATE_CHECK_CACHE is off or the database is an
    SQLite database in memory (which no second connection can watch)."""
    if not app.config["CHECK_CACHE"]:
        return
    with app.app_context():
        engine = db.engine
    if engine.dialect.name == "postgresql":
        app.extensions[EXTENSION] = CheckCache(engine)
    elif engine.dialect.name == "sqlite":
        path = engine.url.database
        # A file by its path; not a database in memory, nor one named by a URI of its own.
        if path and path != ":memory:" and "uri" not in engine.url.query:
            app.extensions[EXTENSION] = SqliteCheckCache(os.path.abspath(path))


def stop_check_cache(app: Flask) -> None:
    """Stop what keeps the app's check cache current, if it has one."""
    cache: CheckMemory[CheckRow] | None = app.extensions.get(EXTENSION)
    if cache is not None:
        cache.stop()
