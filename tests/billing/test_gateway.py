"""The one StripeClient: the in-process sandbox by default, any Stripe-compatible server by URL."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from app import create_app
from app.billing.event_handlers import HANDLERS
from app.billing.gateway import gateway
from app.clock import timestamp
from app.stripe_sandbox import Sandbox
from tests.apps import app_config
from tests.web import WebClient

DAY = 86_400


def test_sandbox_answers_stripe_api_over_http_under_sandbox(client: WebClient) -> None:
    listed = client.get("/sandbox/v1/customers", headers={"Authorization": "Bearer sk_test_x"})
    assert listed.status_code == 200
    assert listed.json()["object"] == "list"
    refused = client.get("/sandbox/v1/customers")
    assert refused.status_code == 401


def test_stripe_api_base_points_the_app_at_another_stripe_server(
    app: Flask, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("TOLLGATE_INSTANCE_PATH", str(tmp_path / "other"))
    other = create_app(
        app_config(
            f"sqlite:///{tmp_path / 'other.sqlite3'}",
            STRIPE_SECRET_KEY="sk_test_other_tollgate",
            STRIPE_API_BASE=app.config["TOLLGATE_BASE_URL"] + "/sandbox",
        )
    )
    assert "stripe_sandbox" not in other.extensions
    runner = other.test_cli_runner()
    synced = runner.invoke(args=["catalog", "sync"])
    assert synced.exit_code == 0, synced.output
    assert "created price pro_monthly" in synced.output
    setup = runner.invoke(
        args=["stripe", "setup", "--url", "https://billing.example/stripe/webhook"]
    )
    assert setup.exit_code == 0, setup.output
    assert "STRIPE_WEBHOOK_SECRET=whsec_" in setup.output
    # Run again (after an upgrade that handles more event types): the same endpoint gets them.
    with app.app_context():
        [endpoint] = [e for e in gateway().webhook_endpoints() if e.url.startswith("https://")]
        gateway().update_webhook_endpoint(endpoint.id, ["invoice.paid"])
    again = runner.invoke(
        args=["stripe", "setup", "--url", "https://billing.example/stripe/webhook"]
    )
    assert again.exit_code == 0, again.output
    assert f"Webhook endpoint {endpoint.id} for https://billing.example" in again.output
    assert "its signing secret (STRIPE_WEBHOOK_SECRET) is unchanged" in again.output
    with app.app_context():
        ours = [e for e in gateway().webhook_endpoints() if e.url.startswith("https://")]
    assert [sorted(e.enabled_events) for e in ours] == [sorted(HANDLERS)]
    # The first app's sandbox now holds what the other app created over HTTP.
    with app.app_context():
        urls = [endpoint.url for endpoint in gateway().webhook_endpoints()]
        assert "https://billing.example/stripe/webhook" in urls
        assert "pro_monthly" in gateway().prices_by_lookup_key(["pro_monthly"])


def test_stripe_setup_refuses_a_url_without_scheme(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["stripe", "setup", "--url", "billing.example"])
    assert result.exit_code == 2
    assert "give the full URL" in result.output


def test_sandbox_advance_command_moves_the_whole_app_in_time(app: Flask) -> None:
    with app.app_context():
        before = timestamp()
    result = app.test_cli_runner().invoke(args=["sandbox", "advance", "--days", "3"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert timestamp() - before >= 3 * DAY


def test_sandbox_state_survives_a_restart(app: Flask, sandbox: Sandbox, tmp_path: Path) -> None:
    with app.app_context():
        customer = gateway().create_customer(email="ada@example.com", name=None, reference_id="r1")
    restarted = create_app(dict(app.config))
    with restarted.app_context():
        again = gateway().client.v1.customers.retrieve(customer.id)
        assert again.email == "ada@example.com"
    # The webhook endpoint registered at the first start is reused, with the same secret.
    assert restarted.config["STRIPE_WEBHOOK_SECRET"] == app.config["STRIPE_WEBHOOK_SECRET"]


def test_restart_sends_the_sandbox_endpoint_every_event_type_handled_now(app: Flask) -> None:
    url = app.config["TOLLGATE_BASE_URL"] + "/stripe/webhook"
    with app.app_context():
        [endpoint] = [e for e in gateway().webhook_endpoints() if e.url == url]
        gateway().update_webhook_endpoint(endpoint.id, ["invoice.paid"])
    restarted = create_app(dict(app.config))
    with restarted.app_context():
        [again] = [e for e in gateway().webhook_endpoints() if e.url == url]
    assert (again.id, sorted(again.enabled_events)) == (endpoint.id, sorted(HANDLERS))
    assert restarted.config["STRIPE_WEBHOOK_SECRET"] == app.config["STRIPE_WEBHOOK_SECRET"]


def test_restart_removes_endpoints_for_our_url_whose_secret_is_lost(app: Flask) -> None:
    with app.app_context():
        url = app.config["TOLLGATE_BASE_URL"] + "/stripe/webhook"
        gateway().create_webhook_endpoint(url, ["invoice.paid"])
    restarted = create_app(dict(app.config))
    with restarted.app_context():
        ours = [endpoint for endpoint in gateway().webhook_endpoints() if endpoint.url == url]
    assert len(ours) == 1
    assert restarted.config["STRIPE_WEBHOOK_SECRET"] == app.config["STRIPE_WEBHOOK_SECRET"]


def test_a_command_for_another_port_leaves_the_servers_endpoint_and_secret(app: Flask) -> None:
    # `flask sandbox advance` in a shell without PORT, beside a server on another port.
    command = create_app(dict(app.config, TOLLGATE_BASE_URL="http://127.0.0.1:5999"))
    assert command.config["STRIPE_WEBHOOK_SECRET"] != app.config["STRIPE_WEBHOOK_SECRET"]
    restarted = create_app(dict(app.config))
    assert restarted.config["STRIPE_WEBHOOK_SECRET"] == app.config["STRIPE_WEBHOOK_SECRET"]
    with restarted.app_context():
        urls = sorted(endpoint.url for endpoint in gateway().webhook_endpoints())
    assert urls == sorted(
        [
            app.config["TOLLGATE_BASE_URL"] + "/stripe/webhook",
            "http://127.0.0.1:5999/stripe/webhook",
        ]
    )
