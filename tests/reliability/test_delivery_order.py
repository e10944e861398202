"""Stripe does not promise order or single delivery: both must not change where Tollgate ends."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import CreditLedgerEntry, CreditPool, Invoice, StripeEvent, Subscription
from app.stripe_sandbox import Sandbox
from tests.apps import sandboxed_app
from tests.journeys import pay_on_checkout_page, start_plan_as_new_buyer
from tests.web import WebClient, serve

DAY = 86_400
MIRRORED = (Subscription, Invoice, CreditPool, CreditLedgerEntry, StripeEvent)


def _comparable(row: Any) -> tuple[tuple[str, Any], ...]:
    """A row without what differs between two runs by nature: ids, times, Stripe's random ids."""
    values = []
    for column in row.__table__.columns:
        value = getattr(row, column.key)
        name = column.key
        if name.endswith(("id", "_at", "_url", "_pdf")) or name in ("created", "source"):
            continue
        if isinstance(value, datetime):
            continue
        values.append((name, value))
    return tuple(values)


def _snapshot(app: Flask) -> dict[str, list[tuple[tuple[str, Any], ...]]]:
    with app.app_context():
        return {
            model.__tablename__: sorted(
                (_comparable(row) for row in db.session.scalars(select(model))), key=repr
            )
            for model in MIRRORED
        }


def _run_journey(
    migrated_database: Any, tmp_path: Path, deliver: Callable[[Sandbox], None]
) -> dict[str, list[tuple[tuple[str, Any], ...]]]:
    """Trial checkout, trial end, one renewal; after each, ``deliver`` sends what Stripe queued."""
    tmp_path.mkdir()
    make_app = sandboxed_app(migrated_database.fresh_url(tmp_path), tmp_path)
    with serve(make_app) as app, WebClient(base_url=app.config["TOLLGATE_BASE_URL"]) as client:
        assert app.test_cli_runner().invoke(args=["catalog", "sync"]).exit_code == 0
        sandbox: Sandbox = app.extensions["stripe_sandbox"]
        checkout_url = start_plan_as_new_buyer(client, "ada@example.com", "pro_monthly")
        pay_on_checkout_page(client, checkout_url, "4242 4242 4242 4242")
        deliver(sandbox)
        sandbox.advance(15 * DAY)
        deliver(sandbox)
        sandbox.advance(31 * DAY)
        deliver(sandbox)
        assert sandbox.pending_deliveries() == []
        snapshot = _snapshot(app)
    migrated_database.clean(app)
    return snapshot


def _in_order(sandbox: Sandbox) -> None:
    sandbox.deliver_pending()


def test_webhooks_delayed_past_renewals_converge_whatever_their_order(
    migrated_database: Any, tmp_path: Path
) -> None:
    def at_the_end(shuffle: bool) -> Callable[[Sandbox], None]:
        calls = []

        def deliver(sandbox: Sandbox) -> None:
            calls.append(1)
            if len(calls) == 3:
                sandbox.deliver_pending(shuffle=shuffle, duplicate=shuffle, rng=random.Random(3))

        return deliver

    in_order = _run_journey(migrated_database, tmp_path / "late-in-order", at_the_end(False))
    shuffled = _run_journey(migrated_database, tmp_path / "late-shuffled", at_the_end(True))
    assert shuffled == in_order
    # Only the period still running when the news arrived grants credits.
    grants = [dict(row) for row in in_order["credit_ledger"] if dict(row)["kind"] == "grant"]
    assert [grant["amount"] for grant in grants] == [1_000_000]


@pytest.mark.parametrize("seed", [7, 2024])
def test_shuffled_duplicated_delivery_ends_in_same_rows_as_in_order(
    migrated_database: Any, tmp_path: Path, seed: int
) -> None:
    expected = _run_journey(migrated_database, tmp_path / "in-order", _in_order)

    def shuffled(sandbox: Sandbox) -> None:
        sandbox.deliver_pending(shuffle=True, duplicate=True, rng=random.Random(seed))

    actual = _run_journey(migrated_database, tmp_path / "shuffled", shuffled)
    assert actual == expected
    # The journey really got somewhere: an active plan, three paid periods, credits granted.
    subscriptions = expected["subscriptions"]
    assert len(subscriptions) == 1
    assert ("status", "active") in [
        (name, str(value)) for name, value in subscriptions[0] if name == "status"
    ]
    reasons = [dict(row)["billing_reason"] for row in expected["invoices"]]
    assert sorted(reasons) == ["subscription_create", "subscription_cycle", "subscription_cycle"]
    ledger = [dict(row) for row in expected["credit_ledger"]]
    grants = [entry["amount"] for entry in ledger if str(entry["kind"]) == "grant"]
    assert grants == [1_000_000] * 3
