"""API fixtures: a key made with the real CLI, and an HTTP client that sends it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from flask import Flask


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
