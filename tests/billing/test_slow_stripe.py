"""A slow or silent Stripe holds no database lock, and a page that waits on it gives up clearly."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from sqlalchemy import select

from app import create_app
from app.accounts import services
from app.accounts.mirror import Subscription
from app.accounts.models import Customer
from app.billing.gateway import gateway
from app.billing.transaction_guard import StripeCalledInTransaction
from app.entitlements.ledger import lock_customers
from app.extensions import db
from app.stripe_sandbox import Sandbox
from app.stripe_sandbox.webhooks import post_over_http
from app.webhooks.models import StripeEvent
from tests.apps import app_config
from tests.web import WebClient, serve, visible_text


def test_guard_refuses_a_stripe_call_inside_a_write_transaction(synced: Flask) -> None:
    with synced.app_context():
        user = services.register("ada@example.com", "correct horse battery")
        with pytest.raises(StripeCalledInTransaction):
            gateway().create_customer(email=user.email, name=None, reference_id="r-1")
        db.session.commit()
        customer_id = user.customer.id
        lock_customers([customer_id])
        with pytest.raises(StripeCalledInTransaction):
            gateway().create_customer(email=user.email, name=None, reference_id="r-1")
        db.session.rollback()
        # Reading is not holding: a read, then Stripe, is how every change starts.
        assert db.session.get(Customer, customer_id) is not None
        assert gateway().create_customer(email=user.email, name=None, reference_id="r-1").id


def invoices_only(url: str, body: bytes, headers: dict[str, str]) -> int:
    """Deliver the invoice events; the others stay queued (as for a failed delivery)."""
    if json.loads(body)["type"].startswith("invoice."):
        return post_over_http(url, body, headers)
    return 500


@contextmanager
def stripe_stalled_on(sandbox: Sandbox, path_prefix: str) -> Iterator[threading.Event]:
    """Hold every sandbox call whose path starts with ``path_prefix`` until the block ends;
    yields an event set once the first such call is waiting."""
    handle, waiting, release = sandbox.handle, threading.Event(), threading.Event()

    def stalled(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        if path.startswith(path_prefix):
            waiting.set()
            release.wait(30)
        return handle(method, path, *args, **kwargs)

    sandbox.handle = stalled  # type: ignore[method-assign]
    try:
        yield waiting
    finally:
        release.set()
        sandbox.handle = handle  # type: ignore[method-assign]


def test_webhooks_waiting_for_stripe_hold_up_no_other_writer(
    api: httpx.Client, enterprise_customer: str, synced: Flask, sandbox: Sandbox, client: WebClient
) -> None:
    with stripe_stalled_on(sandbox, "/v1/subscriptions/") as waiting:
        # The subscription's invoice webhooks: each handler reads the invoice, then the
        # subscription it bills, from Stripe, which does not answer that for now.
        delivery = threading.Thread(target=sandbox.deliver_pending, args=(invoices_only,))
        delivery.start()
        assert waiting.wait(10), "no webhook asked Stripe for the subscription"
        # Meanwhile the same customer's usage is recorded, and a new customer signs up.
        usage = api.post(
            "/events",
            json={
                "eventIdempotencyKey": "while-stripe-waits",
                "eventName": "ai_chat.used",
                "customerReferenceId": enterprise_customer,
                "featureKey": "ai_chat",
                "usageUnits": 1_000,
            },
        )
        signup = client.sign_up("grace@example.com")
        assert usage.status_code == 201, usage.text
        assert signup.status_code == 302, signup.text
        check = api.get(f"/entitlements/{enterprise_customer}/ai_chat")
        assert check.json()["data"]["isAllowed"] is True
    delivery.join(30)
    with synced.app_context():
        events = db.session.scalars(select(StripeEvent)).all()
        assert events
        assert all(event.processed_at is not None for event in events)


@contextmanager
def silent_stripe() -> Iterator[str]:
    """A server that accepts connections and never answers: Stripe in an outage."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    acceptor = threading.Thread(target=accept)
    acceptor.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        acceptor.join()
        for connection in held:
            connection.close()
        listener.close()


@pytest.fixture
def app_on_silent_stripe(
    migrated_database: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Flask]:
    """The app against a Stripe that never answers, with a page's limit of a fraction of a
    second so the test does not wait the real one."""
    monkeypatch.setenv("TOLLGATE_INSTANCE_PATH", str(tmp_path / "instance"))
    url = migrated_database.fresh_url(tmp_path)
    with silent_stripe() as stripe_base:

        def make_app(base_url: str) -> Flask:
            return create_app(
                app_config(
                    url,
                    TOLLGATE_BASE_URL=base_url,
                    STRIPE_SECRET_KEY="sk_test_silent",
                    STRIPE_WEBHOOK_SECRET="whsec_silent",
                    STRIPE_API_BASE=stripe_base,
                    STRIPE_TIMEOUT_SECONDS=0.3,
                )
            )

        with serve(make_app) as application:
            yield application
    migrated_database.clean(application)


def test_stripe_timing_out_gives_a_clear_message_and_leaves_nothing_half_done(
    app_on_silent_stripe: Flask,
) -> None:
    base = app_on_silent_stripe.config["TOLLGATE_BASE_URL"]
    with WebClient(base_url=base, follow_redirects=False, timeout=10) as web:
        assert web.sign_up("ada@example.com").status_code == 302
        started = web.submit("/pricing", {}, action="/checkout/pro_monthly")
        assert started.status_code == 302
        pricing = web.get(started.headers["location"])
    assert "Our payment provider did not confirm this. Please try again in a moment." in (
        visible_text(pricing.text)
    )
    with app_on_silent_stripe.app_context():
        customer = db.session.scalars(select(Customer)).one()
        # Signed up, but no Stripe customer recorded, and no subscription: the next try
        # creates the Stripe customer under the same idempotency key.
        assert customer.stripe_customer_id is None
        assert db.session.scalars(select(Subscription)).all() == []
