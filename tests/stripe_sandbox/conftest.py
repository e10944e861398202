"""Fixtures for the Stripe sandbox: a fresh sandbox, an SDK client on it, a served blueprint."""

from __future__ import annotations

import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import stripe
from flask import Flask
from werkzeug.serving import make_server

from app.stripe_sandbox import Sandbox, SandboxHTTPClient, create_blueprint


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(str(tmp_path / "stripe_sandbox.sqlite3"))


@pytest.fixture
def client(sandbox: Sandbox) -> stripe.StripeClient:
    return stripe.StripeClient(api_key="sk_test_sandbox", http_client=SandboxHTTPClient(sandbox))


@dataclass
class Page:
    status: int
    body: str
    location: str | None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@dataclass
class Server:
    base_url: str

    def get(self, url: str) -> Page:
        return self._open(urllib.request.Request(url))  # noqa: S310

    def post_form(self, url: str, fields: dict[str, str]) -> Page:
        data = urllib.parse.urlencode(fields).encode()
        return self._open(urllib.request.Request(url, data=data, method="POST"))  # noqa: S310

    @staticmethod
    def _open(req: urllib.request.Request) -> Page:
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(req, timeout=5) as response:
                return Page(response.status, response.read().decode(), None)
        except urllib.error.HTTPError as exc:
            return Page(exc.code, exc.read().decode(), exc.headers.get("Location"))


@pytest.fixture
def server(sandbox: Sandbox) -> Iterator[Server]:
    """The blueprint alone in a Flask app, served over real HTTP on a free port."""
    app = Flask(__name__)
    app.extensions["stripe_sandbox"] = sandbox
    app.register_blueprint(create_blueprint(sandbox))
    http = make_server("127.0.0.1", 0, app, threaded=True)
    sandbox.base_url = f"http://127.0.0.1:{http.server_port}"
    thread = threading.Thread(target=http.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield Server(sandbox.base_url)
    http.shutdown()
    thread.join()


@dataclass
class Catalog:
    monthly: stripe.Price
    usage: stripe.Price
    meter: stripe.billing.Meter


@pytest.fixture
def catalog(client: stripe.StripeClient) -> Catalog:
    """A $15/month plan and a metered price of 2 cents per API call."""
    monthly = client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 1500,
            "recurring": {"interval": "month"},
            "product_data": {"name": "Pro"},
            "lookup_key": "pro_monthly",
        }
    )
    meter = client.v1.billing.meters.create(
        params={
            "display_name": "API calls",
            "event_name": "api_call",
            "default_aggregation": {"formula": "sum"},
        }
    )
    usage = client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 2,
            "product_data": {"name": "API calls"},
            "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
        }
    )
    return Catalog(monthly, usage, meter)


def checkout_url(
    client: stripe.StripeClient, price: str, trial_days: int | None = None, **extra: object
) -> stripe.checkout.Session:
    """A subscription-mode Checkout Session for one price."""
    params: dict = {
        "mode": "subscription",
        "line_items": [{"price": price, "quantity": 1}],
        "success_url": "http://app.test/welcome?session={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://app.test/pricing",
        "client_reference_id": "user-7",
        **extra,
    }
    if trial_days:
        params["subscription_data"] = {"trial_period_days": trial_days}
    return client.v1.checkout.sessions.create(params=params)


def pay(server: Server, session: stripe.checkout.Session, card: str) -> Page:
    """Submit the hosted Checkout form with a test card."""
    return server.post_form(
        session.url,
        {"email": "ada@example.com", "card_number": card, "expiry": "12 / 34", "cvc": "123"},
    )


def subscribe(
    client: stripe.StripeClient, server: Server, *prices: str, customer: str | None = None
) -> stripe.Subscription:
    """Subscribe through the hosted Checkout page with the 4242 card."""
    params: stripe.params.checkout.SessionCreateParams = {
        "mode": "subscription",
        "line_items": [{"price": p} for p in prices],
        "success_url": "http://app.test/ok",
        "cancel_url": "http://app.test/no",
    }
    if customer:
        params["customer"] = customer
    session = client.v1.checkout.sessions.create(params=params)
    assert pay(server, session, "4242 4242 4242 4242").status == 303
    completed = client.v1.checkout.sessions.retrieve(session.id)
    return client.v1.subscriptions.retrieve(completed.subscription)


def set_card(client: stripe.StripeClient, server: Server, customer: str, number: str) -> None:
    """Make a test card the customer's default, as the hosted portal does."""
    portal = client.v1.billing_portal.sessions.create(params={"customer": customer})
    page = server.post_form(portal.url, {"action": "card", "card_number": number})
    assert f"Visa ending in {number[-4:]}" in page.body


def recurring_price(
    client: stripe.StripeClient,
    name: str,
    amount: int | str,
    interval: str = "month",
    meter: str | None = None,
) -> stripe.Price:
    """A recurring price: an int is unit_amount, a str is unit_amount_decimal; a meter makes
    it metered."""
    params: stripe.params.PriceCreateParams = {
        "currency": "usd",
        "product_data": {"name": name},
        "recurring": {"interval": interval},  # type: ignore[typeddict-item]
    }
    if isinstance(amount, int):
        params["unit_amount"] = amount
    else:
        params["unit_amount_decimal"] = amount
    if meter:
        params["recurring"] = {"interval": interval, "usage_type": "metered", "meter": meter}  # type: ignore[typeddict-item]
    return client.v1.prices.create(params=params)


def record_usage(client: stripe.StripeClient, customer: str, value: str, **extra: object) -> None:
    """One meter event for the `api_call` meter of the catalog fixture."""
    client.v1.billing.meter_events.create(
        params={
            "event_name": "api_call",
            "payload": {"stripe_customer_id": customer, "value": value},
            **extra,  # type: ignore[typeddict-item]
        }
    )


def invoices_of(client: stripe.StripeClient, sub_id: str) -> list[stripe.Invoice]:
    """A subscription's invoices, oldest first."""
    return list(client.v1.invoices.list(params={"subscription": sub_id}).data)[::-1]


def buy(
    client: stripe.StripeClient, server: Server, price: str, card: str, **extra: object
) -> stripe.checkout.Session:
    """A subscription bought through Checkout with a test card; the completed session."""
    session = checkout_url(client, price, **extra)
    assert pay(server, session, card).status == 303
    return client.v1.checkout.sessions.retrieve(session.id)


def charges_of(client: stripe.StripeClient, customer: str) -> list[stripe.Charge]:
    """A customer's charges, oldest first."""
    return list(client.v1.charges.list(params={"customer": customer}).data)[::-1]
