"""POST /stripe/webhook: only Stripe-signed events are processed, each exactly once."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
import stripe
from sqlalchemy import select

from app import create_app
from app.accounts.mirror import Subscription
from app.extensions import db
from app.stripe_sandbox import Sandbox
from app.webhooks.models import StripeEvent
from tests.apps import app_config
from tests.journeys import pay_on_checkout_page, start_plan_as_new_buyer
from tests.web import WebClient


@pytest.fixture
def checkout_events(client: WebClient, synced, sandbox: Sandbox) -> list[bytes]:
    """The payloads of the events a paid trial checkout queued, not yet delivered."""
    checkout_url = start_plan_as_new_buyer(client, "ada@example.com", "pro_monthly")
    pay_on_checkout_page(client, checkout_url, "4242 4242 4242 4242")
    captured: list[bytes] = []

    def capture(url: str, body: bytes, headers: dict[str, str]) -> int:
        captured.append(body)
        return 500  # keep them queued

    sandbox.deliver_pending(post=capture)
    return captured


def _post(client: WebClient, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return client.post("/stripe/webhook", content=body, headers=headers)


def _state(app) -> tuple[int, int]:
    with app.app_context():
        return (
            len(db.session.scalars(select(Subscription)).all()),
            len(db.session.scalars(select(StripeEvent)).all()),
        )


def test_unsigned_webhook_is_refused_and_changes_nothing(
    client: WebClient, synced, checkout_events: list[bytes]
) -> None:
    response = _post(client, checkout_events[0], None)
    assert response.status_code == 400
    assert response.json()["error"] == "missing Stripe-Signature header"
    assert _state(synced) == (0, 0)


def test_forged_webhook_is_refused_and_changes_nothing(
    client: WebClient, synced, checkout_events: list[bytes]
) -> None:
    forged = _sign(checkout_events[0], "whsec_not_the_real_secret")
    response = _post(client, checkout_events[0], forged)
    assert response.status_code == 400
    assert response.json()["error"] == "signature verification failed"
    assert _state(synced) == (0, 0)


def test_tampered_body_with_real_signature_is_refused(
    client: WebClient, synced, checkout_events: list[bytes]
) -> None:
    secret = synced.config["STRIPE_WEBHOOK_SECRET"]
    signature = _sign(checkout_events[0], secret)
    tampered = checkout_events[0].replace(b'"evt_', b'"evt_forged_', 1)
    assert tampered != checkout_events[0]
    assert _post(client, tampered, signature).status_code == 400
    assert _state(synced) == (0, 0)


def test_stale_signature_is_refused(
    client: WebClient, synced, checkout_events: list[bytes]
) -> None:
    secret = synced.config["STRIPE_WEBHOOK_SECRET"]
    stale = _sign(checkout_events[0], secret, timestamp=int(time.time()) - 600)
    assert _post(client, checkout_events[0], stale).status_code == 400
    assert _state(synced) == (0, 0)


def test_signed_event_is_processed_once_and_repeat_is_a_no_op(
    client: WebClient, synced, checkout_events: list[bytes]
) -> None:
    secret = synced.config["STRIPE_WEBHOOK_SECRET"]
    created = next(body for body in checkout_events if b'"customer.subscription.created"' in body)
    first = _post(client, created, _sign(created, secret))
    assert first.status_code == 200
    assert first.json()["status"] == "processed"
    assert _state(synced) == (1, 1)
    again = _post(client, created, _sign(created, secret))
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert _state(synced) == (1, 1)


def test_unknown_event_type_is_acknowledged(client: WebClient, synced) -> None:
    body = json.dumps(
        {
            "id": "evt_test_unknown",
            "object": "event",
            "type": "payout.paid",
            "created": int(time.time()),
            "data": {"object": {"id": "po_1", "object": "payout"}},
        }
    ).encode()
    response = _post(client, body, _sign(body, synced.config["STRIPE_WEBHOOK_SECRET"]))
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"


def test_failed_handler_answers_500_keeps_error_and_succeeds_on_retry(
    client: WebClient, synced, sandbox: Sandbox, checkout_events: list[bytes], monkeypatch
) -> None:
    real_handle = sandbox.handle

    def stripe_is_down(method, path, headers, body, query=""):
        error = {"error": {"type": "api_error", "message": "Stripe is having a bad day"}}
        return 500, {"Content-Type": "application/json"}, json.dumps(error).encode()

    # Stripe itself fails while the handlers re-read the objects: every delivery fails.
    monkeypatch.setattr(sandbox, "handle", stripe_is_down)
    assert sandbox.deliver_pending() == 0
    with synced.app_context():
        failed = db.session.scalars(select(StripeEvent)).all()
        assert failed
        assert all(event.processed_at is None for event in failed)
        assert all("Stripe is having a bad day" in (event.last_error or "") for event in failed)
        assert db.session.scalars(select(Subscription)).all() == []

    monkeypatch.setattr(sandbox, "handle", real_handle)
    assert sandbox.deliver_pending() == len(checkout_events)
    assert sandbox.pending_deliveries() == []
    with synced.app_context():
        events = db.session.scalars(select(StripeEvent)).all()
        assert all(event.processed_at is not None for event in events)
        assert all(event.last_error is None for event in events)
        assert any(event.attempts == 2 for event in events)
        assert db.session.scalars(select(Subscription)).one().status.value == "trialing"


def test_without_webhook_secret_webhooks_are_refused_loudly(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    monkeypatch.setenv("TOLLGATE_INSTANCE_PATH", str(tmp_path))
    app = create_app(
        app_config(f"sqlite:///{tmp_path / 'db.sqlite3'}", STRIPE_SECRET_KEY="sk_test_123")
    )
    response = app.test_client().post(
        "/stripe/webhook", data=b"{}", headers={"Stripe-Signature": "t=1,v1=abc"}
    )
    assert response.status_code == 503
    assert any("STRIPE_WEBHOOK_SECRET is not configured" in r.message for r in caplog.records)


def _sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=int(time.time()) if timestamp is None else timestamp
    )
