"""API keys: shown once, stored hashed, listed by prefix, revocable; every call needs one."""

from __future__ import annotations

import httpx
import pytest
from flask import Flask
from sqlalchemy import select

from app.accounts.api_keys import ApiKey
from app.extensions import db


def test_created_key_is_stored_only_as_a_hash(synced: Flask, api_key: str) -> None:
    assert api_key.startswith("tg_key_")
    with synced.app_context():
        stored = db.session.scalars(select(ApiKey)).one()
        assert api_key not in (stored.key_hash, stored.prefix)
        assert api_key.startswith(stored.prefix)
    listing = synced.test_cli_runner().invoke(args=["api-keys", "list"])
    assert "tests" in listing.output
    assert api_key not in listing.output


# The entitlement check looks its key up in its own query: it must refuse just the same, and
# before saying whether the customer exists.
CALLS = ["/plans", "/entitlements/nobody/api_calls", "/entitlements/nobody/api_calls?units=x"]


@pytest.mark.parametrize("path", CALLS)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer tg_key_wrong", "Basic dXNlcjpwYXNz", "tg_key_no_scheme"],
)
def test_call_without_a_valid_key_is_401(
    server: str, api_key: str, authorization: str | None, path: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.get(f"{server}/api/v1/client{path}", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_revoked_key_stops_working(synced: Flask, api: httpx.Client) -> None:
    assert api.get("/plans").status_code == 200
    assert api.get("/entitlements/nobody/api_calls").status_code == 404
    with synced.app_context():
        key_id = db.session.scalars(select(ApiKey.id)).one()
    result = synced.test_cli_runner().invoke(args=["api-keys", "revoke", str(key_id)])
    assert result.exit_code == 0, result.output
    for path in CALLS:
        refused = api.get(path)
        assert refused.status_code == 401, path
        assert refused.json()["error"]["code"] == "unauthorized"
    assert "revoked" in synced.test_cli_runner().invoke(args=["api-keys", "list"]).output


def test_revoking_an_unknown_key_says_so(synced: Flask) -> None:
    result = synced.test_cli_runner().invoke(args=["api-keys", "revoke", "999"])
    assert result.exit_code == 1
    assert "There is no API key 999." in result.output
