"""Steps of the buyer journey that many tests take, through the app's pages and Stripe's."""

from __future__ import annotations

import re

import httpx

from app.stripe_sandbox import Sandbox
from tests.web import WebClient


def pay_on_checkout_page(client: WebClient, checkout_url: str, card: str) -> str:
    """Pay on the sandbox's hosted Checkout page; the URL it sends the buyer to next."""
    response = client.post(
        checkout_url,
        data={"email": "", "card_number": card, "expiry": "12 / 34", "cvc": "123"},
    )
    assert response.status_code in (303, 402), response.text
    return response.headers.get("location", "")


def start_plan_as_new_buyer(client: WebClient, email: str, plan_key: str) -> str:
    """Sign up from the pricing page's button for ``plan_key``; the Checkout URL it leads to."""
    client.get("/signup", params={"plan": plan_key})
    response = client.submit("/signup", {"email": email, "password": "correct horse battery"})
    assert response.status_code in (302, 303), response.text
    return response.headers["location"]


DAY = 86_400
GOOD_CARD = "4242 4242 4242 4242"
FAILING_CARD = "4000 0000 0000 0341"


def subscribe(client: WebClient, email: str, plan_key: str, card: str = GOOD_CARD) -> None:
    """A new customer signs up for ``plan_key`` and pays on the Checkout page."""
    checkout_url = start_plan_as_new_buyer(client, email, plan_key)
    success_url = pay_on_checkout_page(client, checkout_url, card)
    assert client.get(success_url).status_code == 200


def advance_days(sandbox: Sandbox, days: float) -> None:
    """Move Stripe's clock (and so Tollgate's) and deliver the webhooks it produced."""
    sandbox.advance(int(days * DAY))
    sandbox.deliver_pending()
    assert sandbox.pending_deliveries() == []


def form_value(html: str, name: str) -> str:
    """The value of the hidden input ``name`` in a page."""
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no {name} field on the page"
    return match.group(1)


def press(
    client: WebClient,
    html: str,
    action: str,
    data: dict[str, str] | None = None,
    htmx: bool = False,
) -> httpx.Response:
    """Press a button of the page ``html`` that posts to ``action``, as a browser would: the
    form's CSRF token and, on the account's action forms, the intent that names this click go
    with ``data``."""
    fields = {"csrf_token": form_value(html, "csrf_token")}
    if 'name="intent"' in html:
        fields["intent"] = form_value(html, "intent")
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(action, data={**fields, **(data or {})}, headers=headers)


def click(
    client: WebClient, action: str, data: dict[str, str] | None = None, htmx: bool = False
) -> httpx.Response:
    """Load /account afresh and press its button that posts to ``action``."""
    return press(client, client.get("/account").text, action, data, htmx)
