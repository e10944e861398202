"""Security headers (app/security.py) on every kind of page, HSTS only over HTTPS, and the
session cookie's flags."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from flask import Flask

from app import create_app
from app.entitlements.fastpath import stop_check_cache
from tests.apps import app_config, sandboxed_app
from tests.conftest import MigratedDatabase
from tests.journeys import start_plan_as_new_buyer
from tests.web import WebClient

HTTPS_SITE = "https://billing.example.com"


def _account_page(client: WebClient) -> str:
    assert client.sign_up("ada@example.com").status_code == 302
    return "/account"


# Each kind of page, and how a client comes to it: the path it then opens.
PAGES: dict[str, Callable[[WebClient], str]] = {
    "pricing": lambda _: "/pricing",
    "login": lambda _: "/login",
    "signup": lambda _: "/signup",
    "account": _account_page,
    "api": lambda _: "/api/v1/openapi.json",
    "sandbox checkout": lambda client: start_plan_as_new_buyer(
        client, "ada@example.com", "pro_monthly"
    ),
}


@pytest.fixture(params=list(PAGES.values()), ids=list(PAGES))
def answer(request: pytest.FixtureRequest, synced: Flask, client: WebClient) -> httpx.Response:
    """The answer of one kind of page, over plain HTTP."""
    response = client.get(request.param(client))
    assert response.status_code == 200, response.text
    return response


@pytest.fixture
def https_app(migrated_database: MigratedDatabase, tmp_path: Path) -> Iterator[Flask]:
    """The application configured to be served at an https:// address."""
    workdir = tmp_path / "https"
    workdir.mkdir()
    app = sandboxed_app(migrated_database.fresh_url(workdir), workdir)(HTTPS_SITE)
    yield app
    stop_check_cache(app)
    migrated_database.clean(app)


def _policy(header: str) -> dict[str, str]:
    """A Content-Security-Policy header's directives, each with its sources."""
    directives = (part.strip().partition(" ") for part in header.split(";"))
    return {name: sources for name, _, sources in directives}


def _session_cookie(app: Flask, base_url: str) -> dict[str, str]:
    """The flags of the session cookie set by the log-in page (its form's CSRF token)."""
    response = app.test_client().get("/login", base_url=base_url)
    header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))
    _, *flags = header.split("; ")
    return {name.lower(): value for name, _, value in (flag.partition("=") for flag in flags)}


def test_page_over_http_sends_csp_without_inline_script_or_framing(answer: httpx.Response) -> None:
    policy = _policy(answer.headers["content-security-policy"])
    assert policy["frame-ancestors"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["object-src"] == "'none'"
    assert policy["base-uri"] == "'self'"
    assert policy["form-action"] == "'self'"


def test_page_over_http_sends_nosniff_referrer_policy_and_deny_but_no_hsts(
    answer: httpx.Response,
) -> None:
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert answer.headers["x-frame-options"] == "DENY"
    assert "strict-transport-security" not in answer.headers


def test_page_over_https_sends_hsts(app: Flask) -> None:
    response = app.test_client().get("/pricing", base_url=HTTPS_SITE)
    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31556926")


def test_csp_against_real_stripe_lets_forms_continue_to_stripe_hosted_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLGATE_INSTANCE_PATH", str(tmp_path))
    app = create_app(
        app_config(
            f"sqlite:///{tmp_path / 'db.sqlite3'}",
            STRIPE_SECRET_KEY="sk_test_123",
            CHECK_CACHE=False,
        )
    )
    response = app.test_client().get("/pricing")
    form_targets = _policy(response.headers["Content-Security-Policy"])["form-action"].split()
    assert form_targets == ["'self'", "https://checkout.stripe.com", "https://billing.stripe.com"]


def test_session_cookie_on_http_site_is_httponly_and_lax_but_not_secure(app: Flask) -> None:
    flags = _session_cookie(app, str(app.config["TOLLGATE_BASE_URL"]))
    assert "httponly" in flags
    assert flags["samesite"] == "Lax"
    assert "secure" not in flags


def test_session_cookie_on_https_site_is_secure_httponly_and_lax(https_app: Flask) -> None:
    flags = _session_cookie(https_app, HTTPS_SITE)
    assert "httponly" in flags
    assert flags["samesite"] == "Lax"
    assert "secure" in flags
