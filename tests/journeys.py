"""Steps of the buyer journey that many tests take, through the app's pages and Stripe's."""

from __future__ import annotations

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
