"""Fixtures: an app per test on a fresh database (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from sqlalchemy import text

from app.extensions import db
from app.stripe_sandbox import Sandbox
from tests.apps import migrate_to_head, sandboxed_app
from tests.databases import POSTGRES_HOWTO, postgres_admin_url, postgres_database
from tests.web import WebClient, serve


def pytest_report_header() -> str:
    """Say at the top of the run which databases the suite runs on."""
    if postgres_admin_url():
        return "databases: SQLite and PostgreSQL (TEST_DATABASE_URL)"
    return f"databases: SQLite only. {POSTGRES_HOWTO}"


@dataclass
class MigratedDatabase:
    """A database at the latest migration, from which each test gets a clean copy."""

    backend: str
    url: str

    def fresh_url(self, tmp_path: Path) -> str:
        """A URL of a database with the schema and no rows, for one test."""
        if self.backend == "sqlite":
            template = Path(self.url.removeprefix("sqlite:///"))
            copy = tmp_path / "tollgate.sqlite3"
            shutil.copyfile(template, copy)
            return f"sqlite:///{copy}"
        return self.url

    def clean(self, app: Flask) -> None:
        """Remove what the test wrote (PostgreSQL is shared by the run's tests)."""
        with app.app_context():
            if self.backend == "postgresql":
                tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
                with db.engine.begin() as connection:
                    connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            db.engine.dispose()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every database test on each configured backend."""
    backends = ["sqlite", "postgresql"] if postgres_admin_url() else ["sqlite"]
    if "migrated_database" in metafunc.fixturenames:
        metafunc.parametrize("migrated_database", backends, indirect=True, scope="session")
    if "empty_database_url" in metafunc.fixturenames:
        metafunc.parametrize("empty_database_url", backends, indirect=True)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line, at the end, for a run without PostgreSQL."""
    if not postgres_admin_url():
        terminalreporter.write_line(POSTGRES_HOWTO, yellow=True)


@pytest.fixture(scope="session", autouse=True)
def isolated_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep every app of the run out of the checkout's instance/ (its database and sandbox)."""
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.mktemp("instance")
        patch.setenv("TOLLGATE_INSTANCE_PATH", str(path))
        yield path


@pytest.fixture(scope="session")
def migrated_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MigratedDatabase]:
    """The run's database for each backend, migrated once."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'template.sqlite3'}"
        migrate_to_head(url)
        yield MigratedDatabase("sqlite", url)
        return
    with postgres_database(str(postgres_admin_url()), "run") as url:
        migrate_to_head(url)
        yield MigratedDatabase("postgresql", url)


@pytest.fixture
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with nothing in it, not even tables."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    with postgres_database(str(postgres_admin_url()), "empty") as url:
        yield url


@pytest.fixture
def app(
    migrated_database: MigratedDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Flask]:
    """The application on a clean database and a fresh Stripe sandbox, served over HTTP."""
    monkeypatch.setenv("TOLLGATE_INSTANCE_PATH", str(tmp_path / "instance"))
    make_app = sandboxed_app(migrated_database.fresh_url(tmp_path), tmp_path)
    with serve(make_app) as application:
        yield application
    migrated_database.clean(application)


@pytest.fixture
def server(app: Flask) -> str:
    """The base URL the app is served at."""
    return str(app.config["TOLLGATE_BASE_URL"])


@pytest.fixture
def sandbox(app: Flask) -> Sandbox:
    """The app's Stripe sandbox, to deliver webhooks or move the clock on demand."""
    stripe_sandbox: Sandbox = app.extensions["stripe_sandbox"]
    return stripe_sandbox


@pytest.fixture
def client(server: str) -> Iterator[WebClient]:
    """An HTTP client for the served app that keeps cookies like a browser."""
    with WebClient(base_url=server, follow_redirects=False, timeout=10) as web_client:
        yield web_client


@pytest.fixture
def synced(app: Flask) -> Flask:
    """The app with its catalog pushed to the sandbox by the real `flask catalog sync`."""
    result = app.test_cli_runner().invoke(args=["catalog", "sync"])
    assert result.exit_code == 0, result.output
    return app


@pytest.fixture
def logged_in(client: WebClient) -> WebClient:
    """A client with a freshly signed-up customer, logged in."""
    response = client.sign_up("ada@example.com")
    assert response.status_code == 302, response.text
    return client


# The operator's product: a key made with the real CLI, and customers made through the API.


@pytest.fixture
def api_key(synced: Flask) -> str:
    """A key created with `flask api-keys create`, as the operator would."""
    result = synced.test_cli_runner().invoke(args=["api-keys", "create", "--name", "tests"])
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


@pytest.fixture
def api(server: str, api_key: str) -> Iterator[httpx.Client]:
    """An HTTP client for /api/v1/client with the key."""
    with httpx.Client(
        base_url=f"{server}/api/v1/client",
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=10,
    ) as client:
        yield client


@pytest.fixture
def free_customer(api: httpx.Client) -> str:
    """A customer on the free plan (1,000 API calls a month, hard limit)."""
    api.post("/customers", json={"customerReferenceId": "free-1", "email": "f@example.com"})
    assert (
        api.post(
            "/subscriptions", json={"customerReferenceId": "free-1", "planId": "free"}
        ).status_code
        == 201
    )
    return "free-1"


@pytest.fixture
def enterprise_customer(api: httpx.Client) -> str:
    """A customer on Enterprise (in arrears, 10M AI tokens of credit, billable overage)."""
    api.post("/customers", json={"customerReferenceId": "ent-1", "email": "e@example.com"})
    response = api.post(
        "/subscriptions", json={"customerReferenceId": "ent-1", "planId": "enterprise_monthly"}
    )
    assert response.status_code == 201
    return "ent-1"
