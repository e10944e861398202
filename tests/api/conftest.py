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
