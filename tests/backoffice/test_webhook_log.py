"""The webhook event log: each event with what became of it, filtered, downloaded, and a failed
one replayed by an operator."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
import stripe
from flask import Flask
from sqlalchemy import select

from app.backoffice.webhook_log import event_status
from app.extensions import db
from app.stripe_sandbox import Sandbox
from app.webhooks.models import StripeEvent
from tests.factories import MadeCustomer, active_customer
from tests.journeys import pay_on_checkout_page, start_plan_as_new_buyer
from tests.web import WebClient, visible_text
from tests.webhooks.test_retries import KeyRevoked

AT = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("event_type", "processed_at", "last_error", "status"),
    [
        ("invoice.paid", AT, None, "processed"),
        ("payout.paid", AT, None, "ignored"),
        ("invoice.paid", None, "GatewayError: Invalid API Key", "failed"),
        ("invoice.paid", None, None, "pending"),
    ],
)
def test_event_status_says_what_became_of_the_event(
    event_type: str, processed_at: datetime | None, last_error: str | None, status: str
) -> None:
    assert event_status(event_type, processed_at, last_error) == status


def _post_event(client: WebClient, app: Flask, event_id: str, event_type: str, obj: dict) -> None:
    """Deliver a signed event as Stripe would (one the sandbox's endpoint is not sent)."""
    body = json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": event_type,
            "created": int(time.time()),
            "data": {"object": obj},
        }
    )
    signature = stripe.WebhookSignature.generate_signature_header(
        body, app.config["STRIPE_WEBHOOK_SECRET"], timestamp=int(time.time())
    )
    response = client.post(
        "/stripe/webhook",
        content=body.encode(),
        headers={"Content-Type": "application/json", "Stripe-Signature": signature},
    )
    assert response.status_code == 200, response.text


@pytest.fixture
def logged_event(client: WebClient, synced: Flask) -> str:
    """An event of a type no handler takes, about a customer, in the log."""
    _post_event(
        client, synced, "evt_ignored_1", "customer.created", {"id": "cus_x", "object": "customer"}
    )
    return "evt_ignored_1"


PAGES = [
    "/admin/webhooks",
    "/admin/webhooks?status=failed&type=invoice.paid&customer=cus_x&page=2",
    "/admin/webhooks?format=csv",
    "/admin/webhooks/evt_ignored_1",
]


@pytest.mark.parametrize("page", PAGES)
def test_an_anonymous_visitor_is_sent_to_log_in(
    client: WebClient, logged_event: str, page: str
) -> None:
    response = client.get(page)
    assert response.status_code == 302
    assert response.headers["location"].startswith("/login?next=/admin/webhooks")
    replay = client.submit("/login", {}, action=f"/admin/webhooks/{logged_event}/replay")
    assert replay.status_code == 302
    assert replay.headers["location"].startswith("/login?next=/admin/webhooks/")


@pytest.mark.parametrize("page", PAGES)
def test_a_customer_finds_nothing(logged_in: WebClient, logged_event: str, page: str) -> None:
    assert logged_in.get(page).status_code == 404
    replay = logged_in.submit("/account", {}, action=f"/admin/webhooks/{logged_event}/replay")
    assert replay.status_code == 404


@pytest.mark.parametrize("page", PAGES)
def test_an_operator_sees_the_log(operator: WebClient, logged_event: str, page: str) -> None:
    assert operator.get(page).status_code == 200
    assert operator.get("/admin/webhooks/evt_nothing").status_code == 404


def _paying_customer(synced: Flask, sandbox: Sandbox) -> MadeCustomer:
    made = active_customer(synced, "starter_monthly", email="lo@example.com")
    sandbox.deliver_pending()
    return made


def test_log_is_filtered_by_type_status_and_customer_and_downloads_the_same(
    operator: WebClient, synced: Flask, sandbox: Sandbox, logged_event: str
) -> None:
    made = _paying_customer(synced, sandbox)
    with synced.app_context():
        rows = db.session.scalars(select(StripeEvent)).all()
        of_customer = [row for row in rows if row.stripe_customer_id == made.stripe_customer_id]
        paid = [row for row in of_customer if row.type == "invoice.paid"]
    assert paid
    assert len(rows) < 50

    everything = visible_text(operator.get("/admin/webhooks").text)
    assert "customer.created ignored" in everything
    assert "invoice.paid processed" in everything

    ignored = visible_text(operator.get("/admin/webhooks", params={"status": "ignored"}).text)
    assert "evt_ignored_1" in ignored
    assert "invoice.paid" not in ignored.split("Download CSV")[0].split("Event")[-1]

    params = {"type": "invoice.paid", "status": "processed", "customer": made.stripe_customer_id}
    page = operator.get("/admin/webhooks", params=params)
    text = visible_text(page.text)
    assert text.count("invoice.paid processed") == len(paid)
    assert "evt_ignored_1" not in text
    assert "No event matches these filters." in visible_text(
        operator.get("/admin/webhooks", params={**params, "status": "failed"}).text
    )

    link = re.search(r'<a href="([^"]+)">Download CSV</a>', page.text)
    assert link
    assert parse_qs(urlsplit(html.unescape(link.group(1))).query) == {
        **{name: [value] for name, value in params.items()},
        "format": ["csv"],
    }
    download = operator.get("/admin/webhooks", params={**params, "format": "csv"})
    assert download.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(download.text)))
    assert sorted(row["event_id"] for row in table) == sorted(row.event_id for row in paid)
    assert {row["status"] for row in table} == {"processed"}
    assert {row["stripe_customer_id"] for row in table} == {made.stripe_customer_id}

    # An event about the customer object itself is the customer's too.
    own = visible_text(operator.get("/admin/webhooks", params={"customer": "cus_x"}).text)
    assert "evt_ignored_1" in own


def test_a_failed_event_is_shown_with_its_error_then_replayed_and_processed(
    operator: WebClient,
    server: str,
    synced: Flask,
    sandbox: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with WebClient(base_url=server, follow_redirects=False, timeout=10) as buyer:
        checkout_url = start_plan_as_new_buyer(buyer, "fay@example.com", "pro_monthly")
        pay_on_checkout_page(buyer, checkout_url, "4242 4242 4242 4242")
    with KeyRevoked(sandbox, monkeypatch):
        assert sandbox.deliver_pending() == 0  # every handler failed: Stripe refused the re-read

    failed = visible_text(operator.get("/admin/webhooks", params={"status": "failed"}).text)
    assert "Invalid API Key" in failed
    with synced.app_context():
        events = db.session.scalars(select(StripeEvent).order_by(StripeEvent.id)).all()
        target = next(event for event in events if event.type == "checkout.session.completed")
        event_id = target.event_id
    assert failed.count("Replay…") == len(events)

    page = f"/admin/webhooks/{event_id}"
    detail = visible_text(operator.get(page).text)
    assert "failed" in detail
    assert "Attempts 1" in detail
    assert "Invalid API Key" in detail

    refused = operator.submit(page, {"reason": "Key rolled back"}, action=f"{page}/replay")
    assert refused.status_code == 400
    assert "Tick the box to confirm the replay." in visible_text(refused.text)

    with KeyRevoked(sandbox, monkeypatch):
        again = operator.submit(
            page, {"reason": "Trying now", "confirm": "y"}, action=f"{page}/replay"
        )
    assert again.status_code == 302
    assert "The replay failed again" in visible_text(operator.get(page).text)

    replayed = operator.submit(
        page, {"reason": "Key rolled back", "confirm": "y"}, action=f"{page}/replay"
    )
    assert replayed.status_code == 302
    shown = visible_text(operator.get(page).text)
    assert f"Replayed {event_id}: processed." in shown
    assert "Status processed" in shown
    assert event_id not in visible_text(
        operator.get("/admin/webhooks", params={"status": "failed"}).text
    )
    audit = visible_text(operator.get("/admin/audit").text)
    assert "replay_webhook" in audit
    assert '{"status": "failed", "attempts": 2}' in audit
    assert '"status": "processed", "attempts": 3' in audit
    assert "Key rolled back" in audit
    # The subscription the checkout made is mirrored now.
    account = visible_text(operator.get("/admin/customers").text)
    assert "fay@example.com" in account
    assert "pro_monthly" in account
