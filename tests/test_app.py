"""The layout: sandbox banner, error pages, JSON errors under /api/."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from flask import Flask, jsonify
from flask.json.provider import DefaultJSONProvider

from app import create_app
from tests.apps import app_config
from tests.web import WebClient, visible_text


def test_sandbox_banner_shown_without_stripe_keys(client: WebClient) -> None:
    page = client.get("/pricing")
    assert "Sandbox mode: no real payments are taken" in visible_text(page.text)


def test_sandbox_banner_hidden_with_stripe_key(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TOLLGATE_INSTANCE_PATH", str(tmp_path))
    app = create_app(
        app_config(f"sqlite:///{tmp_path / 'db.sqlite3'}", STRIPE_SECRET_KEY="sk_test_123")
    )
    page = app.test_client().get("/pricing")
    assert page.status_code == 200
    assert "Sandbox mode" not in page.get_data(as_text=True)


def test_unknown_page_shows_404_in_layout(client: WebClient) -> None:
    page = client.get("/no-such-page")
    assert page.status_code == 404
    text = visible_text(page.text)
    assert "Not Found" in text
    assert "Back to the pricing page" in text
    assert "Tollgate" in text


def test_unknown_api_path_answers_json_404(client: WebClient) -> None:
    response = client.get("/api/v1/client/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"
    assert response.json()["error"]["message"]


def test_unexpected_error_shows_500_page_and_is_logged(app, caplog) -> None:
    @app.route("/boom")
    def boom() -> str:
        raise RuntimeError("kaboom")

    page = app.test_client().get("/boom")
    assert page.status_code == 500
    assert "Something went wrong on our side" in page.get_data(as_text=True)
    assert "kaboom" not in page.get_data(as_text=True)
    assert any("Unhandled error on GET /boom" in r.message for r in caplog.records)


def test_json_answers_read_as_the_standard_librarys_would_write_them(app: Flask) -> None:
    standard = DefaultJSONProvider(app)
    documents = [
        {"b": 1, "a": [1.5, None, True, "naïve ☃"], "nested": {"z": [], "y": {}}},
        {"past_64_bits": 2**70 + 1},  # orjson refuses it: the standard library writes it
        {"at": datetime(2026, 11, 22, 4, 5, 6, tzinfo=UTC)},  # an HTTP date, as Flask writes it
    ]
    with app.test_request_context():
        for document in documents:
            answer = jsonify(document)
            assert answer.mimetype == "application/json"
            assert json.loads(answer.get_data()) == json.loads(standard.dumps(document))
            assert json.loads(app.json.dumps(document)) == json.loads(standard.dumps(document))
