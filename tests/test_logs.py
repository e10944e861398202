"""Logs an operator can search: JSON lines with the request id, and never a secret in them."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from flask import Flask
from sqlalchemy import select

from app import create_app
from app.accounts.models import Customer
from app.config import ENVIRONMENT_VARIABLES, REPO_ROOT
from app.extensions import db
from app.logs import HANDLER_NAME, build_formatter
from app.stripe_sandbox import Sandbox
from app.stripe_sandbox.webhooks import post_over_http
from tests.apps import app_config, sandboxed_app
from tests.journeys import pay_on_checkout_page
from tests.waiting import wait_until
from tests.web import WebClient, serve

if TYPE_CHECKING:
    from tests.conftest import MigratedDatabase


class CapturedLogs(logging.Handler):
    """Every record that reaches the root logger: as the app's formatter writes it, and as it
    was logged (before any redaction, which must not be what keeps secrets out)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(build_formatter("json"))
        self.lines: list[str] = []
        self.raw: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # The test's own HTTP client logs its requests too; those lines are not the app's.
        if record.name.startswith(("httpx", "httpcore")):
            return
        raw = [record.getMessage(), repr(vars(record))]
        if record.exc_info:
            raw.append("".join(traceback.format_exception(*record.exc_info)))
        self.raw.append("\n".join(raw))
        self.lines.append(self.format(record))

    def entries(self) -> list[dict[str, Any]]:
        """The formatted lines, each parsed as the JSON object it must be."""
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def logs() -> Iterator[CapturedLogs]:
    """What is logged during the test, at every level the app's configuration lets through."""
    root = logging.getLogger()
    level = root.level
    capture = CapturedLogs()
    root.addHandler(capture)
    yield capture
    root.removeHandler(capture)
    root.setLevel(level)


def test_request_id_given_comes_back_and_is_on_the_request_lines(
    client: WebClient, logs: CapturedLogs
) -> None:
    response = client.get(
        "/pricing", params={"interval": "year"}, headers={"X-Request-ID": "rq-1.a:b"}
    )
    assert response.headers["X-Request-ID"] == "rq-1.a:b"
    access = [e for e in logs.entries() if e.get("request_id") == "rq-1.a:b"]
    assert access[-1]["logger"] == "app.access"
    assert access[-1]["path"] == "/pricing"
    assert access[-1]["method"] == "GET"
    assert access[-1]["status"] == 200
    assert access[-1]["duration_ms"] >= 0


def test_request_id_absent_is_made_and_returned(client: WebClient, logs: CapturedLogs) -> None:
    made = client.get("/pricing").headers["X-Request-ID"]
    assert len(made) == 32
    assert int(made, 16) >= 0
    assert client.get("/pricing").headers["X-Request-ID"] != made
    assert any(e.get("request_id") == made for e in logs.entries())


@pytest.mark.parametrize("hostile", ["one\ntwo", "x" * 500, "<script>", "a b"])
def test_request_id_hostile_is_replaced(app: Flask, logs: CapturedLogs, hostile: str) -> None:
    # Straight into the WSGI environ: HTTP clients refuse to send a newline in a header.
    response = app.test_client().get("/pricing", environ_overrides={"HTTP_X_REQUEST_ID": hostile})
    made = response.headers["X-Request-ID"]
    assert made != hostile
    assert len(made) == 32
    assert all(hostile not in line for line in logs.lines)


def test_log_lines_are_json_objects_with_the_common_fields(
    app: Flask, client: WebClient, logs: CapturedLogs
) -> None:
    client.get("/pricing")
    app.logger.warning("Flask's own logger")
    logging.getLogger("gunicorn.error").warning("a server's logger")
    entries = logs.entries()
    assert {"app.access", "app", "werkzeug", "gunicorn.error"} <= {e["logger"] for e in entries}
    for entry in entries:
        assert {"timestamp", "level", "logger", "event"} <= entry.keys()
        assert entry["timestamp"].endswith("Z")
        assert "message" not in entry  # the event is the message, once
    assert any(e["event"] == "Flask's own logger" and e["level"] == "warning" for e in entries)


def test_init_logging_for_several_apps_keeps_one_handler(tmp_path: Path) -> None:
    for _ in range(3):
        create_app(app_config("sqlite://", STRIPE_SANDBOX_PATH=str(tmp_path / "sandbox.sqlite3")))
    ours = [h for h in logging.getLogger().handlers if h.name == HANDLER_NAME]
    assert len(ours) == 1


@pytest.mark.parametrize(("setting", "value"), [("LOG_LEVEL", "LOUD"), ("LOG_FORMAT", "xml")])
def test_create_app_with_unknown_log_setting_refuses_to_start(
    tmp_path: Path, setting: str, value: str
) -> None:
    config = app_config("sqlite://", STRIPE_SANDBOX_PATH=str(tmp_path / "sandbox.sqlite3"))
    with pytest.raises(ValueError, match=setting):
        create_app({**config, setting: value})


def test_gunicorn_logconfig_writes_gunicorns_lines_and_the_apps_as_json(tmp_path: Path) -> None:
    config = tmp_path / "gunicorn.conf.py"
    config.write_text(
        "from app.logs import gunicorn_logconfig\n"
        "bind = '127.0.0.1:0'\n"
        "workers = 1\n"
        "accesslog = None\n"
        "logconfig_dict = gunicorn_logconfig()\n"
    )
    environ = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT_VARIABLES}
    environ.update(SECRET_KEY="gunicorn-logs", TOLLGATE_INSTANCE_PATH=str(tmp_path / "instance"))
    output = tmp_path / "gunicorn.log"
    with output.open("wb") as sink:
        server = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            [sys.executable, "-m", "gunicorn", "--config", str(config), "wsgi:app"],
            cwd=REPO_ROOT,
            env=environ,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        listening = wait_until(
            lambda: re.search(r"Listening at: (http://\S+)", output.read_text()), timeout=30
        )
        response = wait_until(
            lambda: _get(f"{listening.group(1)}/pricing", {"X-Request-ID": "via-gunicorn"}), 30
        )
        assert response.headers["X-Request-ID"] == "via-gunicorn"
    finally:
        server.terminate()
        server.wait(timeout=30)
    entries = [json.loads(line) for line in output.read_text().splitlines()]
    assert any(e["logger"] == "gunicorn.error" and "Booting worker" in e["event"] for e in entries)
    access = [e for e in entries if e.get("request_id") == "via-gunicorn"]
    assert [e["logger"] for e in access] == ["app.access"]


def _get(url: str, headers: dict[str, str]) -> httpx.Response | None:
    try:
        return httpx.get(url, headers=headers, timeout=5)
    except httpx.TransportError:
        return None


@pytest.mark.parametrize(
    ("logged", "shown"),
    [
        ("paid with 4242 4242 4242 4242 today", "paid with [REDACTED] today"),
        ("card 4242424242424242", "card [REDACTED]"),
        ("order 4242424242424241 is not a card", "order 4242424242424241 is not a card"),
        ("key sk_live_abc123 and whsec_xyz", "key [REDACTED] and [REDACTED]"),
        ("sent Bearer tg_key_abc-def", "sent [REDACTED]"),
        ("header t=1700000000,v1=5257a869e7ec", "header [REDACTED]"),
    ],
)
def test_redaction_masks_secrets_and_card_numbers_in_the_message(
    logs: CapturedLogs, logged: str, shown: str
) -> None:
    logging.getLogger("tests").warning("%s", logged)
    assert logs.entries()[-1]["event"] == shown


def test_redaction_masks_fields_named_like_secrets(logs: CapturedLogs) -> None:
    extra = {"password": "hunter2", "Authorization": "Basic abc", "stripe_signature": "t=1"}
    logging.getLogger("tests").warning("fields", extra=extra)
    entry = logs.entries()[-1]
    assert entry["password"] == entry["Authorization"] == entry["stripe_signature"] == "[REDACTED]"


# The journey: everything a buyer and an operator's product do, logged at DEBUG.

PASSWORD = "Quiet-Harbour-7319"
CARD = "4242424242424242"


@pytest.fixture
def debug_app(
    logs: CapturedLogs,
    migrated_database: MigratedDatabase,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Flask]:
    """The served app with LOG_LEVEL=DEBUG, captured from its start (the sandbox's endpoint
    registration, with its signing secret, included)."""
    monkeypatch.setenv("TOLLGATE_INSTANCE_PATH", str(tmp_path / "instance"))
    make_app = sandboxed_app(migrated_database.fresh_url(tmp_path), tmp_path, LOG_LEVEL="DEBUG")
    with serve(make_app) as application:
        yield application
    migrated_database.clean(application)


class Journey:
    """A browser that tags each request with an id and notes every session cookie it is given."""

    def __init__(self, base_url: str) -> None:
        self.request_ids: list[str] = []
        self.session_cookies: set[str] = set()
        self.client = WebClient(
            base_url=base_url,
            timeout=10,
            event_hooks={"request": [self._tag], "response": [self._keep_cookies]},
        )

    def _tag(self, request: httpx.Request) -> None:
        self.request_ids.append(f"journey-{len(self.request_ids)}")
        request.headers["X-Request-ID"] = self.request_ids[-1]

    def _keep_cookies(self, response: httpx.Response) -> None:
        for header in response.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            value = rest.split(";")[0]
            if name == "session" and value:
                self.session_cookies.add(value)


def test_full_journey_logs_request_ids_and_never_a_secret(
    debug_app: Flask, logs: CapturedLogs
) -> None:
    app = debug_app
    base_url = app.config["TOLLGATE_BASE_URL"]
    sandbox: Sandbox = app.extensions["stripe_sandbox"]
    signatures: list[str] = []

    def post_signed(url: str, body: bytes, headers: dict[str, str]) -> int:
        signatures.append(headers["Stripe-Signature"])
        return post_over_http(url, body, headers)

    runner = app.test_cli_runner()
    assert runner.invoke(args=["catalog", "sync"]).exit_code == 0
    created = runner.invoke(args=["api-keys", "create", "--name", "journey"])
    api_key = created.output.strip().splitlines()[-1]

    journey = Journey(base_url)
    with journey.client as browser:
        browser.get("/signup", params={"plan": "pro_monthly"})
        checkout = browser.submit("/signup", {"email": "ada@example.com", "password": PASSWORD})
        success_url = pay_on_checkout_page(browser, checkout.headers["location"], CARD)
        assert browser.get(success_url).status_code == 200
        assert sandbox.deliver_pending(post=post_signed) > 0
        assert browser.get("/account").status_code == 200
        browser.submit("/account", {}, action="/logout")
        assert browser.log_in("ada@example.com", "Wrong-Harbour-0000").status_code == 401
        assert browser.log_in("ada@example.com", PASSWORD).status_code == 302

    with app.app_context():
        reference = db.session.scalar(select(Customer.reference_id))
        db.session.rollback()
    with httpx.Client(
        base_url=f"{base_url}/api/v1/client",
        headers={"Authorization": f"Bearer {api_key}", "X-Request-ID": "journey-api"},
        timeout=10,
    ) as api:
        check = api.get(f"/entitlements/{reference}/api_calls")
        assert check.json()["data"]["isAllowed"] is True
        event = {
            "eventIdempotencyKey": "journey-1",
            "eventName": "api_calls.used",
            "customerReferenceId": reference,
            "featureKey": "api_calls",
            "usageUnits": 1,
        }
        assert api.post("/events", json=event).status_code == 201

    secrets = {
        "password": PASSWORD,
        "wrong password": "Wrong-Harbour-0000",
        "API key": api_key,
        "card number": CARD,
        "spaced card number": "4242 4242 4242 4242",
        "webhook secret": app.config["STRIPE_WEBHOOK_SECRET"],
        "SECRET_KEY": app.config["SECRET_KEY"],
        "Stripe secret key": "sk_test_tollgate_sandbox",
    }
    secrets.update({f"session cookie {i}": v for i, v in enumerate(journey.session_cookies)})
    secrets.update({f"Stripe-Signature {i}": v for i, v in enumerate(signatures)})
    secrets.update({f"signature {i}": v.split("v1=")[1][:64] for i, v in enumerate(signatures)})
    assert journey.session_cookies
    assert signatures
    for text in ("\n".join(logs.lines), "\n".join(logs.raw)):
        for name, secret in secrets.items():
            assert secret not in text, f"the {name} was logged"

    # Something was logged, and searchably: every request's id, the customer, Stripe's ids.
    entries = logs.entries()
    logged_ids = {e.get("request_id") for e in entries}
    assert set(journey.request_ids) | {"journey-api"} <= logged_ids
    for path in ("/account", f"/api/v1/client/entitlements/{reference}/api_calls"):
        line = next(e for e in entries if e.get("path") == path)
        assert line["customer"] == reference
    assert any(str(e.get("stripe_request_id", "")).startswith("req_") for e in entries)


def test_log_fields_that_json_cannot_hold_natively_are_written_as_text(
    logs: CapturedLogs,
) -> None:
    logging.getLogger("tests").warning(
        "odd fields", extra={"when": datetime(2026, 12, 7, tzinfo=UTC), "ids": {1}}
    )
    logging.getLogger("tests").warning("a huge count", extra={"huge": 2**70})
    odd, huge = logs.entries()[-2:]
    assert odd["when"] == "2026-12-07T00:00:00+00:00"
    assert odd["ids"] == "{1}"
    assert huge["huge"] == 2**70


def test_gunicorn_access_line_is_written_when_an_operator_asks_for_one(tmp_path: Path) -> None:
    from gunicorn.config import Config as GunicornConfig  # type: ignore[import-untyped]

    from app.logs import GunicornLogger

    asked = GunicornConfig()
    asked.set("accesslog", str(tmp_path / "access.log"))
    request = SimpleNamespace(
        headers=[], method="GET", path="/pricing", query="", version=(1, 1), uri="/pricing"
    )
    response = SimpleNamespace(status="200 OK", headers=[], sent=10, response_length=10)
    environ = {
        "REMOTE_ADDR": "127.0.0.1",
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/pricing",
        "SERVER_PROTOCOL": "HTTP/1.1",
    }

    GunicornLogger(asked).access(response, request, environ, timedelta(milliseconds=3))

    assert '"GET /pricing HTTP/1.1" 200' in (tmp_path / "access.log").read_text()
