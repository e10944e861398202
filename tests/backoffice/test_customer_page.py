"""A customer's page in the back office: entitlements now, usage this period, usage events a
page at a time, and the webhook events that touched the customer."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from flask import Flask
from sqlalchemy import event, select

from app.accounts.models import Customer
from app.extensions import db
from app.stripe_sandbox import Sandbox
from app.webhooks.models import StripeEvent
from tests.factories import active_customer
from tests.web import WebClient, visible_text

PAGES = [
    "/admin/customers/ent-1",
    "/admin/customers/ent-1/usage-events",
    "/admin/customers/ent-1/usage-events?page=2",
    "/admin/customers/ent-1/usage-events?format=csv",
]


def _usage(reference: str, count: int, start: int = 0) -> list[dict[str, object]]:
    return [
        {
            "eventIdempotencyKey": f"chat-{number}",
            "eventName": "ai_chat.used",
            "customerReferenceId": reference,
            "featureKey": "ai_chat",
            "usageUnits": 100 + number,
        }
        for number in range(start, start + count)
    ]


@pytest.mark.parametrize("page", PAGES)
def test_an_anonymous_visitor_is_sent_to_log_in(
    client: WebClient, enterprise_customer: str, page: str
) -> None:
    response = client.get(page)
    assert response.status_code == 302
    assert response.headers["location"].startswith("/login?next=/admin/customers/ent-1")


@pytest.mark.parametrize("page", PAGES)
def test_a_customer_finds_nothing(
    logged_in: WebClient, enterprise_customer: str, page: str
) -> None:
    assert logged_in.get(page).status_code == 404


@pytest.mark.parametrize("page", PAGES)
def test_an_operator_sees_the_page(
    operator: WebClient, enterprise_customer: str, page: str
) -> None:
    assert operator.get(page).status_code == 200


@pytest.mark.parametrize(
    "page", ["/admin/customers/nobody", "/admin/customers/nobody/usage-events"]
)
def test_an_unknown_customer_is_the_404_page(operator: WebClient, page: str) -> None:
    response = operator.get(page)
    assert response.status_code == 404
    assert "The requested URL was not found on the server." in visible_text(response.text)


def test_page_shows_entitlements_now_and_usage_this_period(
    operator: WebClient, enterprise_customer: str, api: httpx.Client
) -> None:
    assert api.post("/events/batch", json={"events": _usage("ent-1", 3)}).status_code == 200

    text = visible_text(operator.get("/admin/customers/ent-1").text)

    # 100 + 101 + 102 tokens of AI chat, drawn from the 10,000,000 of Enterprise's credits.
    assert "Each feature of Enterprise, as the API's check answers for one unit now." in text
    assert "AI chat yes 303 0 — — 9,999,697" in text
    assert "API calls yes 0 unlimited — — 0" in text
    assert "Single sign-on (SSO) yes" in text
    assert "Priority support yes" in text
    assert "AI chat 303 token" in text
    api_check = api.get("/entitlements/ent-1/ai_chat").json()["data"]
    assert api_check["usage"]["used"] == 303


def test_a_customer_without_a_plan_is_entitled_to_nothing(
    operator: WebClient, api: httpx.Client
) -> None:
    api.post("/customers", json={"customerReferenceId": "bare", "email": "b@example.com"})
    text = visible_text(operator.get("/admin/customers/bare").text)
    assert "No plan: no feature is allowed." in text
    assert "No usage event." in text
    assert "No webhook event about this customer." in text


def test_usage_events_come_newest_first_fifty_a_page(
    operator: WebClient, enterprise_customer: str, api: httpx.Client
) -> None:
    api.post("/events/batch", json={"events": _usage("ent-1", 51)})

    page = operator.get("/admin/customers/ent-1").text
    text = visible_text(page)
    assert text.count("ai_chat.used") == 50
    assert "chat-50" in text  # the newest
    assert "chat-0 " not in text  # the oldest is on the next page
    assert 'hx-get="/admin/customers/ent-1/usage-events?page=2"' in page

    # htmx swaps in the rows alone; without JavaScript the link is a page of its own.
    fragment = operator.get(
        "/admin/customers/ent-1/usage-events?page=2", headers={"HX-Request": "true"}
    )
    assert fragment.text.lstrip().startswith('<div id="usage-events">')
    assert "HX-Request" in fragment.headers["vary"]
    older = visible_text(fragment.text)
    assert older.count("ai_chat.used") == 1
    assert "chat-0" in older
    assert "Newer" in older
    assert "Older" not in older
    whole = visible_text(operator.get("/admin/customers/ent-1/usage-events?page=2").text)
    assert "chat-0" in whole
    assert "Back office" in whole

    download = operator.get("/admin/customers/ent-1/usage-events?format=csv")
    assert download.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(download.text)))
    assert rows[0] == [
        "recorded_at",
        "occurred_at",
        "event_name",
        "feature",
        "units",
        "idempotency_key",
    ]
    assert len(rows) == 52
    assert {row[5] for row in rows[1:]} == {f"chat-{n}" for n in range(51)}


def test_webhook_events_of_the_customer_are_listed_with_their_status(
    operator: WebClient, synced: Flask, sandbox: Sandbox
) -> None:
    made = active_customer(synced, "starter_monthly", email="bo@example.com")
    sandbox.deliver_pending()

    with synced.app_context():
        events = db.session.scalars(
            select(StripeEvent).where(StripeEvent.stripe_customer_id == made.stripe_customer_id)
        ).all()
        types = {row.type for row in events}
        reference = db.session.scalars(
            select(Customer.reference_id).where(Customer.id == made.id)
        ).one()
    # Objects that name the customer in their `customer` field.
    assert {"invoice.paid", "customer.subscription.created", "charge.succeeded"} <= types

    page = operator.get(f"/admin/customers/{reference}").text
    text = visible_text(page)
    assert "Webhook events" in text
    assert "invoice.paid processed" in text
    assert text.count(" processed ") == min(len(events), 20)
    assert f'href="/admin/webhooks?customer={made.stripe_customer_id}"' in page


@contextmanager
def _counting_queries(app: Flask) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_page_makes_as_many_queries_with_many_rows_as_with_few(
    operator: WebClient, enterprise_customer: str, api: httpx.Client, app: Flask
) -> None:
    api.post("/events/batch", json={"events": _usage("ent-1", 2)})
    operator.get("/admin/customers/ent-1")  # warm: the catalog and the session's user
    with _counting_queries(app) as few:
        assert operator.get("/admin/customers/ent-1").status_code == 200
    api.post("/events/batch", json={"events": _usage("ent-1", 80, start=2)})
    with _counting_queries(app) as many:
        assert operator.get("/admin/customers/ent-1").status_code == 200
    assert len(many) == len(few)
