"""Health for whatever runs Tollgate unattended: /healthz, /readyz and Prometheus' /metrics.

/healthz says the process answers; /readyz that it can do its work (database, schema, queue),
naming what it cannot reach. /metrics is not public: it answers a bearer token
(``METRICS_TOKEN``), and without one it does not exist on the site; ``METRICS_BIND`` serves it
on an address of its own instead (``serve_metrics``, from gunicorn.conf.py).
"""

from __future__ import annotations

import functools
import hmac
import logging
import socket
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from alembic.script import ScriptDirectory
from flask import Blueprint, Flask, abort, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, column, func, inspect, select, table, text
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response

from app.clock import now
from app.config import REPO_ROOT
from app.entitlements.models import OverageBatch, OverageOutbox, UsageEvent
from app.extensions import db
from app.metrics import exposition
from app.queue import QueueUnavailable, queue_depth
from app.webhooks.models import StripeEvent

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["bp", "serve_metrics"]

log = logging.getLogger(__name__)

# Where Alembic records the revisions applied (its default name; migrations/env.py keeps it).
ALEMBIC_VERSION = table("alembic_version", column("version_num"))

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process answers; nothing else is asked (a restart would not mend anything else)."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """200 when the database answers at the migrations' head and the queue answers; else 503
    with each failing part named."""
    database, migrations = _database_and_migrations()
    checks = {"database": database, "migrations": migrations, "queue": _queue()}
    if all(state == "ok" for state in checks.values()):
        return jsonify(status="ready", checks=checks), 200
    return jsonify(status="unready", checks=checks), 503


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus' scrape, for the holder of METRICS_TOKEN; not found without one configured."""
    token: str | None = current_app.config["METRICS_TOKEN"]
    if not token:
        abort(404)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        return Response(
            "Send the metrics token as Authorization: Bearer <token>.\n",
            401,
            {"WWW-Authenticate": 'Bearer realm="metrics"'},
            content_type="text/plain; charset=utf-8",
        )
    return Response(exposition(ScrapeFigures()), content_type=CONTENT_TYPE_LATEST)


@functools.cache
def _revisions() -> tuple[frozenset[str], frozenset[str]]:
    """The migrations folder's heads, and every revision it knows; read once per process."""
    script = ScriptDirectory(str(REPO_ROOT / "migrations"))
    return frozenset(script.get_heads()), frozenset(r.revision for r in script.walk_revisions())


@bp.record_once
def _read_revisions_at_start(_state: BlueprintSetupState) -> None:
    # At start-up, not on the first probe: reading the folder imports every migration.
    _revisions()


def _database_and_migrations() -> tuple[str, str]:
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            try:
                current = _applied_revisions(connection)
            except SQLAlchemyError as exc:
                return "ok", f"unreadable: {_reason(exc)}"
    except SQLAlchemyError as exc:
        return f"unreachable: {_reason(exc)}", "not checked: the database is unreachable"
    return "ok", _migration_state(current)


def _applied_revisions(connection: Connection) -> frozenset[str]:
    # Read directly: alembic's MigrationContext would log two lines at every probe.
    if not inspect(connection).has_table(ALEMBIC_VERSION.name):
        return frozenset()
    return frozenset(connection.scalars(select(ALEMBIC_VERSION.c.version_num)))


def _migration_state(current: frozenset[str]) -> str:
    heads, known = _revisions()
    if current == heads:
        return "ok"
    at, head = ", ".join(sorted(current)) or "nothing", ", ".join(sorted(heads))
    if current <= known:
        return f"behind: at {at}, head {head}"
    # A newer release migrated the database, and this one was started (or rolled back) on it.
    return f"unknown revision: at {at}, head {head}"


def _queue() -> str:
    try:
        queue_depth()
    except QueueUnavailable as exc:
        return f"unreachable: {_reason(exc)}"
    return "ok"


def _reason(exc: Exception) -> str:
    """The first line of an error, short enough for a probe's answer."""
    return str(exc).strip().split("\n", 1)[0][:200]


class ScrapeFigures(Collector):
    """What is owed and waiting, read from the database and the queue when a scrape asks (in an
    app context): counted once per scrape, whichever process answers it."""

    def collect(self) -> Iterable[Metric]:
        try:
            yield from self._from_database()
        except SQLAlchemyError:
            log.warning("metrics: the database's figures could not be read", exc_info=True)
        try:
            depth = queue_depth()
        except QueueUnavailable:
            log.warning("metrics: the queue's depth could not be read", exc_info=True)
        else:
            yield GaugeMetricFamily(
                "tollgate_queue_depth", "Tasks waiting in the worker's queue.", value=depth
            )

    def _from_database(self) -> Iterable[Metric]:
        with db.engine.connect() as connection:
            unbatched, oldest_unbatched = connection.execute(
                select(func.count(), func.min(UsageEvent.recorded_at))
                .select_from(OverageOutbox)
                .join(UsageEvent, UsageEvent.id == OverageOutbox.usage_event_id)
                .where(OverageOutbox.batch_id.is_(None))
            ).one()
            unsent, oldest_unsent = connection.execute(
                select(func.count(), func.min(OverageBatch.created_at)).where(
                    OverageBatch.forwarded_at.is_(None)
                )
            ).one()
            unprocessed = connection.scalar(
                select(func.count())
                .select_from(StripeEvent)
                .where(StripeEvent.processed_at.is_(None))
            )
        waiting = [at for at in (oldest_unbatched, oldest_unsent) if at is not None]
        age = (now() - min(waiting)).total_seconds() if waiting else 0.0
        yield GaugeMetricFamily(
            "tollgate_overage_backlog",
            "Overage not yet sent to Stripe: outbox rows not batched, and batches not sent.",
            value=unbatched + unsent,
        )
        yield GaugeMetricFamily(
            "tollgate_overage_oldest_age_seconds",
            "How long the oldest overage not yet sent to Stripe has waited (0 when none).",
            value=max(age, 0.0),
        )
        yield GaugeMetricFamily(
            "tollgate_webhook_events_unprocessed",
            "Stripe events received and not processed yet (failed, or in flight).",
            value=unprocessed or 0,
        )


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Scrapes are not logged: one every few seconds says nothing."""


class _SharedPortServer(ThreadingWSGIServer):
    """Every gunicorn worker listens on METRICS_BIND (SO_REUSEPORT): the kernel hands each
    scrape to one of them, and any one answers for all (the counts are in shared files)."""

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def serve_metrics(app: Flask) -> WSGIServer | None:
    """Serve GET /metrics on METRICS_BIND (``host:port``) from a thread of this process, if it
    is set; gunicorn.conf.py calls it in each worker. The server, or None."""
    bind: str | None = app.config["METRICS_BIND"]
    if not bind:
        return None
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"METRICS_BIND must be host:port, such as 127.0.0.1:9100, not {bind!r}")

    def answer(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            return Response("Not found: the metrics are at /metrics.\n", 404)(
                environ, start_response
            )
        with app.app_context():
            body = exposition(ScrapeFigures())
        return Response(body, content_type=CONTENT_TYPE_LATEST)(environ, start_response)

    try:
        server = make_server(
            host, int(port), answer, server_class=_SharedPortServer, handler_class=_QuietHandler
        )
    except OSError:
        log.exception("metrics: cannot listen on METRICS_BIND=%s", bind)
        return None
    threading.Thread(target=server.serve_forever, name="tollgate-metrics", daemon=True).start()
    return server
