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

from app import create_app
from app.extensions import db
from app.models import CreditLedgerEntry, CreditPool, Invoice, StripeEvent, Subscription
from app.stripe_sandbox import Sandbox
from tests.apps import app_config
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
    migrated_database: Any, tmp_path: Path, deliver: Callable[[Sandbox, bool], None]
) -> dict[str, list[tuple[tuple[str, Any], ...]]]:
    """Trial checkout, trial end, one renewal; ``deliver`` is called after each step."""
    tmp_path.mkdir()
    database_url = migrated_database.fresh_url(tmp_path)

    def make_app(base_url: str) -> Flask:
        return create_app(
            app_config(
                database_url,
                TOLLGATE_BASE_URL=base_url,
                STRIPE_SANDBOX_PATH=str(tmp_path / "stripe_sandbox.sqlite3"),
            )
        )

    with serve(make_app) as app, WebClient(base_url=app.config["TOLLGATE_BASE_URL"]) as client:
        assert app.test_cli_runner().invoke(args=["catalog", "sync"]).exit_code == 0
        sandbox: Sandbox = app.extensions["stripe_sandbox"]
        checkout_url = start_plan_as_new_buyer(client, "ada@example.com", "pro_monthly")
        pay_on_checkout_page(client, checkout_url, "4242 4242 4242 4242")
        deliver(sandbox, False)
        sandbox.advance(15 * DAY)
        deliver(sandbox, False)
        sandbox.advance(31 * DAY)
        deliver(sandbox, True)
        assert sandbox.pending_deliveries() == []
        snapshot = _snapshot(app)
    migrated_database.clean(app)
    return snapshot


def _in_order(sandbox: Sandbox, last: bool) -> None:
    sandbox.deliver_pending()


@pytest.mark.parametrize("seed", [7, 2024])
def test_shuffled_duplicated_delivery_ends_in_same_rows_as_in_order(
    migrated_database: Any, tmp_path: Path, seed: int
) -> None:
    expected = _run_journey(migrated_database, tmp_path / "in-order", _in_order)

    def shuffled(sandbox: Sandbox, last: bool) -> None:
        if last:
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
    grants = [dict(row) for row in expected["credit_ledger"]]
    assert [entry["amount"] for entry in grants] == [1_000_000] * 3
