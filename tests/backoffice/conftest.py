"""An operator, logged in, for the back office's tests."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.web import WebClient

OPERATOR_PASSWORD = "operator horse battery"


def make_operator(app: Flask, email: str) -> str:
    """Make (or promote) an operator with the real `flask users create-operator`."""
    result = app.test_cli_runner().invoke(
        args=["users", "create-operator", email], input=f"{OPERATOR_PASSWORD}\n" * 2
    )
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def operator(app: Flask, client: WebClient) -> WebClient:
    """A client logged in as ops@example.com, an operator."""
    make_operator(app, "ops@example.com")
    response = client.log_in("ops@example.com", OPERATOR_PASSWORD)
    assert response.status_code == 302, response.text
    return client
