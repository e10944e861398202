"""/healthz and /readyz: what a load balancer, an orchestrator or a deploy script asks."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import flask_migrate
import httpx
import pytest
from flask import Flask

from app import create_app
from app.entitlements.fastpath import stop_check_cache
from app.extensions import db
from app.queue import init_queue, queue
from tests.apps import app_config, migrate_to_head
from tests.web import WebClient

# A Redis port where nothing listens: the queue is down, and says so at once.
REDIS_DOWN = "redis://127.0.0.1:1/0"


@pytest.fixture
def redis_down(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """The served app's queue is a Redis that does not answer (TOLLGATE_QUEUE_URL)."""
    monkeypatch.setattr(queue, "storage", queue.storage)  # the next app gets its own anyway
    monkeypatch.setitem(app.config, "TOLLGATE_QUEUE_URL", REDIS_DOWN)
    init_queue(app)


@pytest.fixture
def unserved_app(tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """A factory of apps on a given database, not served (Flask's test client asks them)."""
    made: list[Flask] = []

    def make(database_url: str, **overrides: object) -> Flask:
        app = create_app(
            app_config(
                database_url, STRIPE_SANDBOX_PATH=str(tmp_path / "sandbox.sqlite3"), **overrides
            )
        )
        made.append(app)
        return app

    yield make
    for app in made:
        stop_check_cache(app)
        with app.app_context():
            db.engine.dispose()


def test_healthz_answers_ok(client: WebClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_on_a_migrated_database_is_ready(client: WebClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "queue": "ok"},
    }


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_health_routes_answer_anonymous_callers_without_a_redirect_to_log_in(
    client: WebClient, path: str
) -> None:
    # /metrics without METRICS_TOKEN does not exist: a 404, not the log-in page.
    assert client.get(path).status_code == (404 if path == "/metrics" else 200)


def test_readyz_on_a_database_one_migration_behind_is_503_naming_migrations(
    empty_database_url: str, unserved_app: Callable[..., Flask]
) -> None:
    migrate_to_head(empty_database_url)
    app = unserved_app(empty_database_url)
    with app.app_context():
        flask_migrate.downgrade(revision="-1")

    response = app.test_client().get("/readyz")

    assert response.status_code == 503
    body = response.json
    assert body["status"] == "unready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["queue"] == "ok"
    behind = re.fullmatch(r"behind: at (\w+), head (\w+)", body["checks"]["migrations"])
    assert behind, body["checks"]["migrations"]
    assert behind.group(1) < behind.group(2)


def test_readyz_without_a_database_is_503_naming_the_database(
    unserved_app: Callable[..., Flask],
) -> None:
    app = unserved_app("postgresql+psycopg://postgres@127.0.0.1:1/nowhere", CHECK_CACHE=False)

    response = app.test_client().get("/readyz")

    assert response.status_code == 503
    checks = response.json["checks"]
    assert checks["database"].startswith("unreachable: ")
    assert checks["migrations"] == "not checked: the database is unreachable"
    assert checks["queue"] == "ok"


def test_readyz_with_the_queue_down_is_503_while_pages_and_checks_still_serve(
    client: WebClient, api: httpx.Client, free_customer: str, redis_down: None
) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["queue"].startswith("unreachable: ")
    assert "127.0.0.1:1" in checks["queue"]
    assert (checks["database"], checks["migrations"]) == ("ok", "ok")

    assert client.get("/pricing").status_code == 200
    check = api.get(f"/entitlements/{free_customer}/api_calls")
    assert check.status_code == 200
    assert check.json()["data"]["isAllowed"] is True
