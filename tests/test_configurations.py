"""Every configuration the README documents, started once from nothing: no instance folder, no
database, no catalog in Stripe. Each migrates, syncs the catalog and serves /pricing."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from flask import Flask

from app import create_app
from app.config import ENVIRONMENT_VARIABLES, REPO_ROOT
from tests.apps import sandboxed_app
from tests.databases import postgres_admin_url, postgres_database
from tests.processes import BIN, free_port, tollgate_environ
from tests.web import WebClient, serve

# What a developer's shell might hold that would make a start not "from nothing".
SETTINGS = ENVIRONMENT_VARIABLES


clean_environ = tollgate_environ


@contextmanager
def stand_in_stripe(tmp_path: Path) -> Iterator[str]:
    """A second Tollgate, in sandbox mode and served over HTTP: its /sandbox is the Stripe API."""
    make_app = sandboxed_app(f"sqlite:///{tmp_path / 'stand-in.sqlite3'}", tmp_path)
    with serve(make_app) as stripe_app:
        yield f"{stripe_app.config['TOLLGATE_BASE_URL']}/sandbox"


def flask(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run a ``flask`` command of the checkout, as a user would from its folder."""
    return command(environ, sys.executable, "-m", "flask", *args)


def command(environ: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    """Run a program of the checkout's environment from its folder; its output kept."""
    return subprocess.run(  # noqa: S603 (our own programs and arguments)
        argv,
        cwd=REPO_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def wait_for(url: str, seconds: float = 20) -> httpx.Response:
    """The first answer from ``url`` once its server is up."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({}, "SECRET_KEY and STRIPE_WEBHOOK_SECRET"),
        ({"SECRET_KEY": "s3cret"}, "STRIPE_WEBHOOK_SECRET"),
        ({"STRIPE_WEBHOOK_SECRET": "whsec_x"}, "SECRET_KEY"),
    ],
)
def test_server_and_worker_against_real_stripe_refuse_to_start_without_secrets(
    tmp_path: Path, given: dict[str, str], named: str
) -> None:
    environ = clean_environ(
        STRIPE_SECRET_KEY="sk_live_placeholder",
        TOLLGATE_INSTANCE_PATH=str(tmp_path),
        TOLLGATE_BIND=f"127.0.0.1:{free_port()}",
        **given,
    )
    server = command(environ, str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", "wsgi:app")
    worker = flask(environ, "worker")
    assert server.returncode != 0
    assert f"without {named} set" in server.stderr
    assert worker.returncode != 0
    assert f"without {named} set" in worker.stderr


def test_fresh_clone_with_a_stripe_key_migrates_syncs_and_serves(tmp_path: Path) -> None:
    instance = tmp_path / "clone" / "instance"
    with stand_in_stripe(tmp_path / "stripe") as stripe_base:
        environ = clean_environ(
            SECRET_KEY="a-secret-of-the-deployment",
            STRIPE_SECRET_KEY="sk_test_fresh_clone",
            STRIPE_API_BASE=stripe_base,
            TOLLGATE_INSTANCE_PATH=str(instance),
        )
        for command in (["db", "upgrade"], ["catalog", "sync"]):
            done = flask(environ, *command)
            assert done.returncode == 0, done.stderr
        assert (instance / "tollgate.sqlite3").exists()
        # Real Stripe mode: no sandbox state and no generated secret were made.
        made = {path.name for path in instance.iterdir()}
        assert not made & {"secret_key", "stripe_sandbox.sqlite3"}
        port = free_port()
        server = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "flask", "run", "--port", str(port)],
            cwd=REPO_ROOT,
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            pricing = wait_for(f"http://127.0.0.1:{port}/pricing")
        finally:
            server.terminate()
            server.wait(timeout=10)
        listed = httpx.get(
            f"{stripe_base}/v1/prices",
            params={"lookup_keys[]": "pro_monthly"},
            auth=("sk_test_any", ""),
        )
    assert pricing.status_code == 200
    assert "Start trial" in pricing.text
    assert "sandbox" not in pricing.text.lower()
    assert [price["lookup_key"] for price in listed.json()["data"]] == ["pro_monthly"]


@dataclass
class Configuration:
    """Settings to start with, and what a user would then see of them."""

    settings: Callable[[Path, ExitStack], dict[str, str]]
    check: Callable[[Flask, Path, WebClient], None] = field(default=lambda *_: None)


def _defaults(tmp: Path, _: ExitStack) -> dict[str, str]:
    return {}


def _made_its_secret_and_sandbox(app: Flask, tmp: Path, _: WebClient) -> None:
    instance = tmp / "instance"
    assert (instance / "secret_key").read_text() == app.config["SECRET_KEY"]
    assert (instance / "stripe_sandbox.sqlite3").exists()


def _sqlite_elsewhere(tmp: Path, _: ExitStack) -> dict[str, str]:
    return {"DATABASE_URL": f"sqlite:///{tmp / 'data' / 'deep' / 'tollgate.sqlite3'}"}


def _database_made(app: Flask, tmp: Path, _: WebClient) -> None:
    assert (tmp / "data" / "deep" / "tollgate.sqlite3").exists()


def _postgresql(tmp: Path, stack: ExitStack) -> dict[str, str]:
    admin = postgres_admin_url()
    if admin is None:
        pytest.skip("DATABASE_URL=postgresql://... needs TEST_DATABASE_URL")
    url = stack.enter_context(postgres_database(admin, "fresh"))
    # Hosting platforms hand out postgres:// URLs; the README promises they work as they are.
    return {"DATABASE_URL": url.replace("postgresql+psycopg://", "postgres://")}


def _on_postgresql(app: Flask, tmp: Path, _: WebClient) -> None:
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")


def _own_plans(tmp: Path, _: ExitStack) -> dict[str, str]:
    catalog = (REPO_ROOT / "plans.toml").read_text().replace('name = "Pro"', 'name = "Studio"')
    (tmp / "catalog.toml").write_text(catalog)
    return {"TOLLGATE_PLANS": str(tmp / "catalog.toml")}


def _shows_own_plans(app: Flask, tmp: Path, client: WebClient) -> None:
    assert "Studio" in client.get("/pricing").text


def _shared_login_limits(tmp: Path, _: ExitStack) -> dict[str, str]:
    return {
        "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379",
        "LOGIN_LIMIT_PER_ADDRESS": "2 per minute",
        "LOGIN_LIMIT_PER_IP": "50 per minute",
    }


def _limits_log_ins(app: Flask, tmp: Path, client: WebClient) -> None:
    # A fresh address each run: the counts live in Redis, shared with every other run.
    email = f"{uuid.uuid4().hex}@example.com"
    answers = [client.submit("/login", {"email": email, "password": "wrong"}) for _ in range(3)]
    assert [answer.status_code for answer in answers][-1] == 429


def _sandbox_elsewhere(tmp: Path, _: ExitStack) -> dict[str, str]:
    return {"STRIPE_SANDBOX_PATH": str(tmp / "stripe" / "state.sqlite3")}


def _sandbox_made(app: Flask, tmp: Path, _: WebClient) -> None:
    assert (tmp / "stripe" / "state.sqlite3").exists()
    assert not (tmp / "instance" / "stripe_sandbox.sqlite3").exists()


def _tuned(tmp: Path, _: ExitStack) -> dict[str, str]:
    return {"TOLLGATE_CHECK_CACHE": "off", "PAST_DUE_GRACE_DAYS": "3", "PORT": "5123"}


def _tuning_taken(app: Flask, tmp: Path, _: WebClient) -> None:
    assert (app.config["CHECK_CACHE"], app.config["PAST_DUE_GRACE_DAYS"]) == (False, 3)


CONFIGURATIONS = {
    "nothing set": Configuration(_defaults, _made_its_secret_and_sandbox),
    "DATABASE_URL sqlite in a new folder": Configuration(_sqlite_elsewhere, _database_made),
    "DATABASE_URL postgres": Configuration(_postgresql, _on_postgresql),
    "TOLLGATE_PLANS": Configuration(_own_plans, _shows_own_plans),
    "RATELIMIT_STORAGE_URI redis and login limits": Configuration(
        _shared_login_limits, _limits_log_ins
    ),
    "STRIPE_SANDBOX_PATH": Configuration(_sandbox_elsewhere, _sandbox_made),
    "TOLLGATE_CHECK_CACHE, PAST_DUE_GRACE_DAYS, PORT": Configuration(_tuned, _tuning_taken),
}


@pytest.mark.parametrize("name", list(CONFIGURATIONS))
def test_documented_configuration_starts_from_nothing(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configuration = CONFIGURATIONS[name]
    with ExitStack() as stack:
        settings = {
            "TOLLGATE_INSTANCE_PATH": str(tmp_path / "instance"),
            **configuration.settings(tmp_path, stack),
        }
        for setting in SETTINGS:
            monkeypatch.delenv(setting, raising=False)
        for setting, value in settings.items():
            monkeypatch.setenv(setting, value)

        def from_environment(base_url: str) -> Flask:
            monkeypatch.setenv("TOLLGATE_BASE_URL", base_url)
            # The environment, not a test config: exactly what `flask` and gunicorn read.
            return create_app()

        with (
            serve(from_environment) as app,
            WebClient(base_url=app.config["TOLLGATE_BASE_URL"]) as client,
        ):
            for command in (["db", "upgrade"], ["catalog", "sync"]):
                result = app.test_cli_runner().invoke(args=command)
                assert result.exit_code == 0, result.output
            pricing = client.get("/pricing")
            assert pricing.status_code == 200
            assert "Start trial" in pricing.text
            configuration.check(app, tmp_path, client)
            with app.app_context():
                from app.extensions import db

                db.engine.dispose()


def test_readme_configuration_table_lists_every_variable_the_app_reads() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    documented = re.findall(r"^\| `([A-Z_]+)` \|", readme, flags=re.MULTILINE)
    assert sorted(documented) == sorted(ENVIRONMENT_VARIABLES)
