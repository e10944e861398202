"""API key scopes: a read key reads, a write key also writes, old keys keep full access; every
call declares the scope it needs, and the OpenAPI document says which."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flask_migrate
import httpx
import pytest
from flask import Flask
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError

from app import create_app
from app.accounts.api_keys import READ, WRITE, ApiKey
from app.api.routes import KEY_CHECKED_BY_VIEW, SCOPE_OF_VIEW, bp
from app.extensions import db
from tests.apps import app_config, sandboxed_app
from tests.databases import change_from_outside
from tests.waiting import wait_until
from tests.web import serve


def _create_key(app: Flask, *options: str) -> str:
    result = app.test_cli_runner().invoke(args=["api-keys", "create", "--name", "t", *options])
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


def _client(server: str, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{server}/api/v1/client", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )


@pytest.fixture
def read_api(synced: Flask, server: str) -> Iterator[httpx.Client]:
    """A client with a key created with `--scope read`."""
    with _client(server, _create_key(synced, "--scope", "read")) as client:
        yield client


def _event(key: str, customer: str) -> dict[str, Any]:
    return {
        "eventIdempotencyKey": key,
        "eventName": "ai.chat",
        "customerReferenceId": customer,
        "featureKey": "ai_chat",
        "usageUnits": 5,
    }


# What a write could change: rows counted before and after a refusal.
WRITTEN = ["customers", "subscriptions", "usage_events", "usage_counters", "credit_ledger"]


def _counts(app: Flask) -> dict[str, int]:
    with app.app_context():
        counts = {
            table: db.session.execute(
                select(func.count()).select_from(db.metadata.tables[table])
            ).scalar_one()
            for table in WRITTEN
        }
        db.session.rollback()
    return counts


def test_read_key_reads_plans_customers_checks_and_balances(
    read_api: httpx.Client, enterprise_customer: str
) -> None:
    simulation = {
        "customerReferenceId": enterprise_customer,
        "featureKey": "ai_chat",
        "track": {"eventName": "ai.chat", "usageUnits": 5},
    }
    for _ in range(2):  # the second time, the worker knows the key
        assert read_api.get("/plans").status_code == 200
        assert read_api.get(f"/customers/{enterprise_customer}").status_code == 200
        check = read_api.get(f"/entitlements/{enterprise_customer}/ai_chat")
        assert check.status_code == 200, check.text
        assert check.json()["data"]["isAllowed"] is True
        assert read_api.get(f"/credits/{enterprise_customer}/pools").status_code == 200
        assert read_api.post("/entitlements", json=simulation).status_code == 200


def test_read_key_is_refused_every_write_and_nothing_is_written(
    synced: Flask, api: httpx.Client, read_api: httpx.Client, enterprise_customer: str
) -> None:
    subscription = api.get(f"/customers/{enterprise_customer}").json()["data"]["subscriptions"][0]
    sub = subscription["id"]
    csv = (
        "customer_reference_id,feature_key,units,idempotency_key,event_name\n"
        f"{enterprise_customer},ai_chat,2,row-1,ai.chat\n"
    )
    writes: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/events", {"json": _event("e-1", enterprise_customer)}),
        ("POST", "/events/batch", {"json": {"events": [_event("e-2", enterprise_customer)]}}),
        ("POST", "/usage/import", {"content": csv, "headers": {"Content-Type": "text/csv"}}),
        ("POST", "/customers", {"json": {"customerReferenceId": "new-1", "email": "n@x.io"}}),
        ("POST", "/subscriptions", {"json": {"customerReferenceId": "new-1", "planId": "free"}}),
        (
            "POST",
            f"/subscriptions/{sub}/plan-change",
            {"json": {"changeToPlanId": "pro_monthly", "changeType": "DOWNGRADE"}},
        ),
        ("POST", f"/subscriptions/cancellation/{sub}", {"params": {"cancelMode": "IMMEDIATE"}}),
        ("DELETE", f"/subscriptions/cancellation/{sub}/scheduled", {}),
    ]
    assert read_api.get("/plans").status_code == 200  # the worker now knows the read key
    before = _counts(synced)
    check_before = read_api.get(f"/entitlements/{enterprise_customer}/ai_chat").json()
    for method, path, kwargs in writes:
        refused = read_api.request(method, path, **kwargs)
        assert refused.status_code == 403, (method, path, refused.text)
        assert refused.json()["error"] == {
            "code": "insufficient_scope",
            "message": f"This API key has the read scope; {method} /api/v1/client{path} needs"
            " write.",
        }
    assert _counts(synced) == before
    assert api.get(f"/customers/{enterprise_customer}").json()["data"]["subscriptions"] == [
        subscription
    ]
    assert read_api.get(f"/entitlements/{enterprise_customer}/ai_chat").json() == check_before
    assert api.get("/customers/new-1").status_code == 404


def test_write_key_reads_and_writes(
    synced: Flask, server: str, api: httpx.Client, enterprise_customer: str
) -> None:
    with _client(server, _create_key(synced, "--scope", "write")) as write_api:
        assert write_api.get("/plans").status_code == 200
        assert write_api.get(f"/entitlements/{enterprise_customer}/ai_chat").status_code == 200
        recorded = write_api.post("/events", json=_event("w-1", enterprise_customer))
        assert recorded.status_code == 201, recorded.text
        batch = write_api.post(
            "/events/batch", json={"events": [_event("w-2", enterprise_customer)]}
        )
        assert batch.json()["data"][0]["status"] == "recorded"
    used = api.get(f"/entitlements/{enterprise_customer}/ai_chat").json()["data"]["usage"]["used"]
    assert used == 10


def test_key_created_without_a_scope_has_read_and_write(
    synced: Flask, api: httpx.Client, enterprise_customer: str
) -> None:
    assert api.post("/events", json=_event("d-1", enterprise_customer)).status_code == 201
    with synced.app_context():
        assert db.session.scalars(select(ApiKey.scopes)).one() == "read write"
    listing = synced.test_cli_runner().invoke(args=["api-keys", "list"])
    assert "\tread,write\t" in listing.output


def test_key_from_before_scopes_keeps_full_access(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = "tg_key_made-before-scopes"
    with create_app(app_config(empty_database_url)).app_context():
        flask_migrate.upgrade(revision="0017")
        with db.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO api_keys (name, prefix, key_hash, created_at)"
                    " VALUES ('old', 'tg_key_made-b', :hash, CURRENT_TIMESTAMP)"
                ),
                {"hash": hashlib.sha256(plain.encode()).hexdigest()},
            )
        flask_migrate.upgrade()
        db.engine.dispose()
    monkeypatch.setenv("TOLLGATE_INSTANCE_PATH", str(tmp_path / "instance"))
    with serve(sandboxed_app(empty_database_url, tmp_path)) as app:
        with _client(str(app.config["TOLLGATE_BASE_URL"]), plain) as old_api:
            assert old_api.get("/plans").status_code == 200
            # Past the scope check: the customer is what is missing.
            event = old_api.post("/events", json=_event("o-1", "nobody"))
            assert event.status_code == 404, event.text
            assert event.json()["error"]["code"] == "customer_not_found"
        listing = app.test_cli_runner().invoke(args=["api-keys", "list"])
        assert "old\tread,write\tactive" in listing.output
        with app.app_context():
            db.engine.dispose()


def test_a_scope_narrowed_outside_tollgate_reaches_the_keys_workers_remember(
    app: Flask, api: httpx.Client, enterprise_customer: str
) -> None:
    # Tollgate never changes a key's scopes; a psql session might. The worker remembered the
    # key with both scopes after its first call; the change reaches it as a revocation does.
    assert api.post("/events", json=_event("n-0", enterprise_customer)).status_code == 201
    change_from_outside(
        app.config["SQLALCHEMY_DATABASE_URI"], "UPDATE api_keys SET scopes = 'read'"
    )

    def refused() -> httpx.Response | None:
        # For a customer that does not exist: allowed, it is a 404, and nothing is written.
        answer = api.post("/events", json=_event("n-1", "nobody"))
        return answer if answer.status_code == 403 else None

    refusal = wait_until(refused, failure="the narrowed key still writes")
    assert refusal is not None
    assert refusal.json()["error"]["code"] == "insufficient_scope"
    assert api.get(f"/entitlements/{enterprise_customer}/ai_chat").status_code == 200


@pytest.mark.parametrize("scopes", ["write", "", "read write admin"])
def test_database_holds_every_key_to_read_or_read_write(
    app: Flask, api_key: str, scopes: str
) -> None:
    # The entitlement check's one query does not look at scopes: every key must have read.
    with app.app_context():
        with pytest.raises(IntegrityError):
            db.session.execute(update(ApiKey).values(scopes=scopes))
        db.session.rollback()


@pytest.mark.parametrize(
    ("options", "listed"),
    [
        (["--scope", "read"], "read"),
        (["--scope", "write"], "read,write"),
        (["--scope", "read,write"], "read,write"),
        (["--scope", "read", "--scope", "write"], "read,write"),
        (["--scope", " Read "], "read"),
    ],
)
def test_cli_creates_keys_with_the_chosen_scopes(
    app: Flask, options: list[str], listed: str
) -> None:
    result = app.test_cli_runner().invoke(args=["api-keys", "create", "--name", "s", *options])
    assert result.exit_code == 0, result.output
    assert f"with scopes {listed}." in result.output
    listing = app.test_cli_runner().invoke(args=["api-keys", "list"])
    assert f"\ts\t{listed}\tactive" in listing.output


@pytest.mark.parametrize("scope", ["admin", "read,admin", ""])
def test_cli_refuses_an_unknown_scope_and_creates_nothing(app: Flask, scope: str) -> None:
    result = app.test_cli_runner().invoke(
        args=["api-keys", "create", "--name", "s", "--scope", scope]
    )
    assert result.exit_code == 2
    unknown = scope.split(",")[-1]
    assert f"{unknown!r} is not a scope. Choose read" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ApiKey)) == 0


def test_every_api_endpoint_declares_its_scope(app: Flask) -> None:
    endpoints = {
        rule.endpoint for rule in app.url_map.iter_rules() if rule.endpoint.startswith("api.")
    }
    assert endpoints
    assert {endpoint: SCOPE_OF_VIEW.get(endpoint) for endpoint in endpoints} == {
        endpoint: SCOPE_OF_VIEW[endpoint] for endpoint in endpoints
    }
    assert set(SCOPE_OF_VIEW.values()) <= {READ, WRITE}
    # A view that checks its key in its own query checks no scope: it may need only read.
    assert {SCOPE_OF_VIEW[endpoint] for endpoint in KEY_CHECKED_BY_VIEW} == {READ}


def test_an_endpoint_without_a_scope_refuses_every_key(app: Flask, server: str) -> None:
    app.add_url_rule(f"{bp.url_prefix}/undeclared", "api.undeclared", lambda: "served")
    key = _create_key(app)
    with _client(server, key) as full_api:
        refused = full_api.get("/undeclared")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "insufficient_scope"
    assert "GET /api/v1/client/undeclared declares no scope" in refused.json()["error"]["message"]


def test_openapi_document_shows_each_operations_scope(app: Flask, server: str) -> None:
    document = httpx.get(f"{server}/api/v1/openapi.json").json()
    # Flask's names of the path's parts, and the document's.
    names = {"reference_id": "customerReferenceId", "subscription_id": "subscriptionId"}
    seen = 0
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api."):
            continue
        path = re.sub(
            r"<(\w+)>",
            lambda part: "{" + names.get(part[1], "featureKey") + "}",
            rule.rule.removeprefix(bp.url_prefix or ""),
        )
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            operation = document["paths"][path][method.lower()]
            scope = SCOPE_OF_VIEW[rule.endpoint]
            assert operation["x-required-scope"] == scope, rule.endpoint
            assert operation["security"] == [{"apiKey": [scope]}], rule.endpoint
            assert f"`{scope}` scope" in operation["description"], rule.endpoint
            refusal = operation["responses"].get("403", {}).get("description", "")
            assert ("insufficient_scope" in refusal) == (scope == WRITE), rule.endpoint
            seen += 1
    assert seen == sum(len(operations) for operations in document["paths"].values())
    assert "--scope" in document["components"]["securitySchemes"]["apiKey"]["description"]
