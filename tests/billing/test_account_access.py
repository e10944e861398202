"""Every account page and action, and Checkout's return page, only ever shows or changes the
logged-in customer's own plan."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from sqlalchemy import select

from app.accounts.mirror import Subscription
from app.extensions import db
from tests.factories import trialing_customer
from tests.journeys import pay_on_checkout_page, start_plan_as_new_buyer
from tests.web import WebClient, visible_text

# (method, path, form): every page and action under /account.
ACCOUNT_ROUTES = [
    ("GET", "/account", {}),
    ("GET", "/account/plan/starter_monthly", {}),
    ("POST", "/account/plan/starter_monthly", {}),
    ("POST", "/account/plan/pro_yearly", {"proration_date": "1"}),
    ("POST", "/account/plan/undo", {}),
    ("GET", "/account/cancel", {}),
    ("POST", "/account/cancel", {"mode": "period_end"}),
    ("POST", "/account/cancel", {"mode": "now", "confirm": "yes"}),
    ("POST", "/account/resume", {}),
    ("POST", "/account/billing-portal", {}),
]
VISITORS = ["anonymous", "other customer"]


@pytest.fixture
def first_customer(synced: Flask) -> dict[str, str]:
    """Ada, on Pro (trialing), and what would give her away on a page."""
    ada = trialing_customer(synced, "pro_monthly")
    return {"reference": ada.reference_id, "stripe_customer": ada.stripe_customer_id}


@pytest.fixture
def first_checkout(client: WebClient, synced: Flask) -> dict[str, str]:
    """Ada, on Pro (trialing) through Checkout, her session's id, and what would give her away."""
    checkout_url = start_plan_as_new_buyer(client, "ada@example.com", "pro_monthly")
    success_url = pay_on_checkout_page(client, checkout_url, "4242 4242 4242 4242")
    client.get(success_url)
    with synced.app_context():
        subscription = db.session.scalars(select(Subscription)).one()
        reference = subscription.customer.reference_id
    return {
        "session_id": success_url.split("session_id=")[1],
        "reference": reference,
        "stripe_customer": subscription.customer.stripe_customer_id or "",
    }


def _state(app: Flask) -> tuple[str, str, bool, str | None]:
    with app.app_context():
        subscription = db.session.scalars(select(Subscription)).one()
        return (
            subscription.plan_key,
            subscription.status.value,
            subscription.cancel_at_period_end,
            subscription.scheduled_plan_key,
        )


@pytest.mark.parametrize("visitor", VISITORS)
@pytest.mark.parametrize(("method", "path", "form"), ACCOUNT_ROUTES)
def test_account_route_gives_nothing_of_another_customer(
    server: str,
    synced: Flask,
    first_customer: dict[str, str],
    visitor: str,
    method: str,
    path: str,
    form: dict[str, str],
) -> None:
    _assert_gives_nothing_of(first_customer, synced, server, visitor, method, path, form)


@pytest.mark.parametrize("visitor", VISITORS)
def test_checkout_success_page_gives_nothing_of_another_customers_checkout(
    server: str, synced: Flask, first_checkout: dict[str, str], visitor: str
) -> None:
    path = f"/checkout/success?session_id={first_checkout['session_id']}"
    _assert_gives_nothing_of(first_checkout, synced, server, visitor, "GET", path, {})


def _assert_gives_nothing_of(
    first: dict[str, str],
    app: Flask,
    server: str,
    visitor: str,
    method: str,
    path: str,
    form: dict[str, str],
) -> None:
    """``visitor`` requests ``path``: it sees nothing of Ada's and changes nothing of hers."""
    before = _state(app)
    with WebClient(base_url=server) as other:
        if visitor == "other customer":
            assert other.sign_up("grace@example.com").status_code == 302
        token = other.csrf_token("/login" if visitor == "anonymous" else "/account")
        if method == "GET":
            response = other.get(path)
        else:
            response = other.post(path, data={"csrf_token": token, **form})
    if visitor == "anonymous":
        assert response.status_code == 302
        assert response.headers["location"].startswith("/login")
    else:
        assert response.status_code in (200, 302, 303, 400, 404), response.status_code
    for secret in ("ada@example.com", first["reference"], first["stripe_customer"]):
        assert secret not in response.text
        assert secret not in response.headers.get("location", "")
    # The plan's name as a word: a random id in a redirect's link may hold the letters "Pro".
    assert not re.search(r"\bPro\b", visible_text(response.text))
    assert _state(app) == before
