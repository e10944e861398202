"""`flask stripe setup` configures Stripe's billing portal: created once, updated after, with
what Tollgate leaves to the portal on and what it does itself off unless the operator opts in."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import Result
from flask import Flask

from app.billing.gateway import gateway

URL = "https://billing.example/stripe/webhook"


def _setup(app: Flask, allows: str | None = None) -> Result:
    app.config["TOLLGATE_PORTAL_ALLOWS"] = allows
    return app.test_cli_runner().invoke(args=["stripe", "setup", "--url", URL])


def _ours(app: Flask) -> list[dict[str, Any]]:
    with app.app_context():
        found = [c.to_dict() for c in gateway().portal_configurations()]
    return [c for c in found if (c["metadata"] or {}).get("tollgate") == "billing_portal"]


def _endpoints(app: Flask) -> list[str]:
    with app.app_context():
        return [e.url for e in gateway().webhook_endpoints() if e.url == URL]


def test_setup_creates_the_portal_configuration_then_updates_the_same_one(synced: Flask) -> None:
    first = _setup(synced)
    assert first.exit_code == 0, first.output
    [made] = _ours(synced)
    assert f"Created billing-portal configuration {made['id']}" in first.output
    features = made["features"]
    assert features["payment_method_update"]["enabled"] is True
    assert features["invoice_history"]["enabled"] is True
    assert features["customer_update"] == {
        "enabled": True,
        "allowed_updates": ["address", "name", "tax_id"],
    }
    assert features["subscription_cancel"]["enabled"] is False
    assert features["subscription_update"]["enabled"] is False
    assert made["default_return_url"] == f"{synced.config['TOLLGATE_BASE_URL']}/account"
    assert made["is_default"] is False

    again = _setup(synced)
    assert again.exit_code == 0, again.output
    assert f"Updated billing-portal configuration {made['id']}" in again.output
    assert [c["id"] for c in _ours(synced)] == [made["id"]]


def test_opting_in_turns_cancel_and_plan_changes_on_and_opting_out_off(synced: Flask) -> None:
    assert _setup(synced).exit_code == 0
    opted = _setup(synced, "plan_changes, cancel")
    assert opted.exit_code == 0, opted.output
    assert "plan changes, cancelling at period end" in opted.output
    [configuration] = _ours(synced)
    cancel = configuration["features"]["subscription_cancel"]
    assert (cancel["enabled"], cancel["mode"]) == (True, "at_period_end")
    update = configuration["features"]["subscription_update"]
    assert update["enabled"] is True
    assert update["proration_behavior"] == "always_invoice"
    with synced.app_context():
        prices = gateway().prices_by_lookup_key(["starter_monthly", "pro_yearly", "free"])
    offered = {price for product in update["products"] for price in product["prices"]}
    assert {prices["starter_monthly"].id, prices["pro_yearly"].id} <= offered
    assert prices["free"].id not in offered

    assert _setup(synced, "").exit_code == 0
    [configuration] = _ours(synced)
    assert configuration["features"]["subscription_cancel"]["enabled"] is False
    assert configuration["features"]["subscription_update"]["enabled"] is False


@pytest.mark.parametrize(
    ("allows", "message"),
    [
        ("cancel,refunds", "TOLLGATE_PORTAL_ALLOWS names 'refunds', which is not an opt-in"),
        ("Cancel", "TOLLGATE_PORTAL_ALLOWS names 'Cancel', which is not an opt-in"),
    ],
)
def test_an_unknown_opt_in_is_named_and_nothing_is_set_up(
    synced: Flask, allows: str, message: str
) -> None:
    result = _setup(synced, allows)
    assert result.exit_code == 1
    assert message in result.output
    assert "Nothing was changed." in result.output
    assert _ours(synced) == []
    assert _endpoints(synced) == []


def test_plan_changes_before_the_catalog_is_synced_say_so_and_change_nothing(app: Flask) -> None:
    result = _setup(app, "plan_changes")
    assert result.exit_code == 1
    assert "run `flask catalog sync` first" in result.output
    assert _ours(app) == []
    assert _endpoints(app) == []


def test_a_configuration_stripe_refuses_leaves_the_one_before_as_it_was(synced: Flask) -> None:
    assert _setup(synced).exit_code == 0
    [before] = _ours(synced)
    synced.config["TOLLGATE_BASE_URL"] = "billing.example"  # no scheme: not a URL to Stripe
    try:
        result = _setup(synced, "cancel")
    finally:
        synced.config["TOLLGATE_BASE_URL"] = before["default_return_url"].removesuffix("/account")
    assert result.exit_code == 1
    assert "Stripe refused the billing-portal configuration: Invalid URL" in result.output
    assert "Nothing was changed." in result.output
    assert _ours(synced) == [before]
    assert "Webhook endpoint" not in result.output
