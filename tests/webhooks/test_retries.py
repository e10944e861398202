"""The worker's sweep of the event log: a failed event is retried with backoff, then dead."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app.accounts.mirror import Subscription
from app.extensions import db
from app.stripe_sandbox import Sandbox
from app.webhooks.models import StripeEvent
from app.webhooks.processing import MAX_ATTEMPTS
from app.webhooks.retries import retry_due_events
from tests.journeys import pay_on_checkout_page, start_plan_as_new_buyer
from tests.web import WebClient

MINUTE = 60


class KeyRevoked:
    """Stripe refusing the operator's secret key (rolled in the dashboard): every call fails at
    once with a 401, which nothing retries within the call."""

    def __init__(self, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sandbox, self.monkeypatch, self.real_handle = sandbox, monkeypatch, sandbox.handle

    def __enter__(self) -> None:
        def refuse(method: str, path: str, headers: Any, body: bytes, query: str = "") -> Any:
            error = {"error": {"type": "invalid_request_error", "message": "Invalid API Key"}}
            return 401, {"Content-Type": "application/json"}, json.dumps(error).encode()

        self.monkeypatch.setattr(self.sandbox, "handle", refuse)

    def __exit__(self, *exc: object) -> None:
        self.monkeypatch.setattr(self.sandbox, "handle", self.real_handle)


@pytest.fixture
def key_revoked(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> KeyRevoked:
    return KeyRevoked(sandbox, monkeypatch)


@pytest.fixture
def failed_checkout(
    client: WebClient, synced: Flask, sandbox: Sandbox, key_revoked: KeyRevoked
) -> Flask:
    """A paid trial checkout whose webhooks all failed: Stripe refused every re-read."""
    checkout_url = start_plan_as_new_buyer(client, "ada@example.com", "pro_monthly")
    pay_on_checkout_page(client, checkout_url, "4242 4242 4242 4242")
    with key_revoked:
        assert sandbox.deliver_pending() == 0
    # Stripe's own retries are never delivered here: only the worker's sweep is left.
    return synced


def _events(app: Flask) -> list[StripeEvent]:
    with app.app_context():
        events = db.session.scalars(select(StripeEvent).order_by(StripeEvent.id)).all()
        db.session.expunge_all()
        return list(events)


def _sweep(app: Flask) -> tuple[int, int]:
    with app.app_context():
        report = retry_due_events()
        return len(report.processed), len(report.failed)


def test_failed_event_is_due_a_minute_later_and_the_sweep_applies_it(
    failed_checkout: Flask, sandbox: Sandbox
) -> None:
    failed = _events(failed_checkout)
    assert failed
    assert all(event.attempts == 1 and event.processed_at is None for event in failed)
    assert all(event.next_attempt_at is not None for event in failed)

    assert _sweep(failed_checkout) == (0, 0)  # not due yet
    sandbox.advance(MINUTE + 1)
    processed, still_failing = _sweep(failed_checkout)

    assert (processed, still_failing) == (len(failed), 0)
    after = _events(failed_checkout)
    assert all(event.processed_at is not None and event.next_attempt_at is None for event in after)
    with failed_checkout.app_context():
        assert db.session.scalars(select(Subscription)).one().status.value == "trialing"
    assert _sweep(failed_checkout) == (0, 0)


def test_event_failing_every_retry_backs_off_doubling_then_is_dead(
    failed_checkout: Flask, sandbox: Sandbox, key_revoked: KeyRevoked
) -> None:
    waits = []
    with key_revoked:
        for _attempt in range(2, MAX_ATTEMPTS + 1):
            event = _events(failed_checkout)[0]
            assert event.dead_at is None
            due_in = int(event.next_attempt_at.timestamp()) - sandbox.now()
            waits.append(due_in)
            sandbox.advance(due_in)
            assert _sweep(failed_checkout)[1] >= 1
    # Each wait began when the attempt failed, a moment (of real time, which the sandbox's
    # clock follows) before it was measured.
    backoff = [MINUTE * 2**n for n in range(MAX_ATTEMPTS - 1)]
    assert all(
        expected - 30 < wait <= expected for wait, expected in zip(waits, backoff, strict=True)
    )

    dead = _events(failed_checkout)[0]
    assert dead.attempts == MAX_ATTEMPTS
    assert dead.dead_at is not None
    assert dead.next_attempt_at is None
    assert "Invalid API Key" in (dead.last_error or "")

    # Dead events wait for an operator, whatever the sweep does with events still living;
    # once Stripe answers again, a replay applies them.
    sandbox.advance(30 * 24 * 3600)
    _sweep(failed_checkout)
    assert _events(failed_checkout)[0].processed_at is None
    result = failed_checkout.test_cli_runner().invoke(args=["webhooks", "retry", dead.event_id])
    assert result.exit_code == 0, result.output
    assert "1 processed, 0 failed." in result.output
    assert _events(failed_checkout)[0].processed_at is not None


def test_replay_failed_applies_every_unprocessed_event_and_stops_on_a_refusal(
    failed_checkout: Flask, key_revoked: KeyRevoked
) -> None:
    failed = [event.event_id for event in _events(failed_checkout)]
    runner = failed_checkout.test_cli_runner()

    with key_revoked:
        refused = runner.invoke(args=["webhooks", "replay", "--failed"])
    assert refused.exit_code == 1
    assert f"0 replayed, {len(failed)} failed." in refused.output
    assert "Invalid API Key" in refused.output

    replayed = runner.invoke(args=["webhooks", "replay", "--failed"])
    assert replayed.exit_code == 0, replayed.output
    assert f"{len(failed)} replayed, 0 failed." in replayed.output
    assert all(event.processed_at is not None for event in _events(failed_checkout))
    with failed_checkout.app_context():
        assert db.session.scalars(select(Subscription)).one().status.value == "trialing"
    nothing_left = runner.invoke(args=["webhooks", "replay", "--failed"])
    assert "0 replayed, 0 failed." in nothing_left.output


def test_replay_runs_a_processed_event_again_and_the_mirror_stays_as_stripe_has_it(
    client: WebClient, synced: Flask, sandbox: Sandbox
) -> None:
    checkout_url = start_plan_as_new_buyer(client, "ada@example.com", "pro_monthly")
    pay_on_checkout_page(client, checkout_url, "4242 4242 4242 4242")
    sandbox.deliver_pending()
    processed = [event.event_id for event in _events(synced) if event.processed_at is not None]
    assert processed
    runner = synced.test_cli_runner()

    result = runner.invoke(args=["webhooks", "replay", processed[0], "evt_unknown"])

    assert result.exit_code == 1
    assert "1 replayed, 1 failed." in result.output
    assert "evt_unknown: unknown event" in result.output
    with synced.app_context():
        assert db.session.scalars(select(Subscription)).one().status.value == "trialing"
    both = runner.invoke(args=["webhooks", "replay", processed[0], "--failed"])
    assert both.exit_code == 2
    assert "Name the events to replay, or give --failed" in both.output
