"""Every journey of the account page, its webhooks replayed in hundreds of orders, with repeats,
into a Tollgate that knows only the customer: the same credits and the same list every time.

Stripe promises neither order nor single delivery, and a handler re-reads each object from
Stripe, so a replay after the journey sees Stripe as it ended. What it must not do is let the
order decide: which grant came first, which subscription was heard of last.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import stripe
from flask import Flask
from sqlalchemy import delete, select

from app.accounts.models import Customer
from app.billing.gateway import gateway
from app.extensions import db
from app.stripe_sandbox import Sandbox
from tests.journeys import (
    GOOD_CARD,
    advance_days,
    click,
    form_value,
    pay_on_checkout_page,
    press,
    subscribe,
)
from tests.web import WebClient

# What a fresh Tollgate keeps from before the replay: who the customer is, and the API's key.
KEPT_TABLES = frozenset({"users", "customers", "api_keys", "alembic_version"})
ORDERS_PER_JOURNEY = 34


def start_again(client: WebClient, plan_key: str) -> None:
    """A customer whose plan ended picks another through Checkout."""
    checkout = click(client, f"/checkout/{plan_key}")
    assert checkout.status_code == 303, checkout.text
    client.get(pay_on_checkout_page(client, checkout.headers["location"], GOOD_CARD))


def upgrade(client: WebClient, plan_key: str) -> None:
    """Preview the upgrade, then confirm it."""
    preview = client.get(f"/account/plan/{plan_key}").text
    proration_date = form_value(preview, "proration_date")
    press(client, preview, f"/account/plan/{plan_key}", {"proration_date": proration_date})


def cancel_now_then_start_again(client: WebClient, sandbox: Sandbox) -> None:
    """A Pro trial cancelled at once, then Pro again (paid: the trial was had) while the
    cancelled trial's period would still be running."""
    subscribe(client, "ada@example.com", "pro_monthly")
    advance_days(sandbox, 3)
    confirm = client.get("/account/cancel").text
    press(client, confirm, "/account/cancel", {"mode": "now", "confirm": "yes"})
    start_again(client, "pro_monthly")
    advance_days(sandbox, 1)


def upgrade_then_downgrade(client: WebClient, sandbox: Sandbox) -> None:
    """Starter past its trial, upgraded to Pro, renewed, then down to Starter at period end."""
    subscribe(client, "ada@example.com", "starter_monthly")
    advance_days(sandbox, 15)
    upgrade(client, "pro_monthly")
    advance_days(sandbox, 31)
    click(client, "/account/plan/starter_monthly")
    advance_days(sandbox, 31)
    advance_days(sandbox, 32)


def cancel_resume_cancel_then_start_again(client: WebClient, sandbox: Sandbox) -> None:
    """Pro past its trial: cancel at period end, resume, cancel again; it ends; Starter."""
    subscribe(client, "ada@example.com", "pro_monthly")
    advance_days(sandbox, 15)
    click(client, "/account/cancel", {"mode": "period_end"})
    click(client, "/account/resume")
    click(client, "/account/cancel", {"mode": "period_end"})
    advance_days(sandbox, 31)
    start_again(client, "starter_monthly")
    advance_days(sandbox, 32)


# Each journey ends a day into a period, once Stripe has finalized and charged its invoice (an
# hour after a renewal), so the replay has a paid running period to grant.


@dataclass(frozen=True)
class Journey:
    """A journey, and what its customer holds when it is over, worked out by hand."""

    run: Callable[[WebClient, Sandbox], None]
    # Only the live subscription's current period grants; ended subscriptions keep nothing.
    pools: list[tuple[str, int]]
    plans_newest_first: list[str]


JOURNEYS = {
    "cancel-now-then-start-again": Journey(
        cancel_now_then_start_again, [("ai_tokens", 1_000_000)], ["pro_monthly", "pro_monthly"]
    ),
    "upgrade-then-downgrade": Journey(
        upgrade_then_downgrade, [("ai_tokens", 200_000)], ["starter_monthly"]
    ),
    "cancel-resume-cancel-then-start-again": Journey(
        cancel_resume_cancel_then_start_again,
        [("ai_tokens", 200_000)],
        ["starter_monthly", "pro_monthly"],
    ),
}


def sent_events(app: Flask) -> list[str]:
    """Every event Stripe sent during the journey, as the JSON bodies it posted."""
    with app.app_context():
        events = gateway().client.v1.events.list({"limit": 100}).auto_paging_iter()
        # Stripe sends decimals as strings, which is what the SDK read them from.
        return [json.dumps(event.to_dict(), default=str) for event in events]


def forget_all_but_the_customer(app: Flask) -> None:
    """Make the app a fresh Tollgate that has only just signed the customer up."""
    with app.app_context():
        for table in reversed(db.metadata.sorted_tables):
            if table.name not in KEPT_TABLES:
                db.session.execute(delete(table))
        db.session.commit()


def deliver(server: str, secret: str, bodies: list[str]) -> None:
    """Post each body to the webhook endpoint, signed as Stripe signs it."""
    with httpx.Client(base_url=server, timeout=10) as http:
        for body in bodies:
            signature = stripe.WebhookSignature.generate_signature_header(body, secret)
            response = http.post(
                "/stripe/webhook",
                content=body,
                headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
            )
            assert response.status_code == 200, response.text


def what_the_customer_has(api: httpx.Client, reference_id: str) -> dict[str, Any]:
    """What the API answers about the customer: its pools, and its subscriptions in order."""
    pools = api.get(f"/credits/{reference_id}/pools").json()["data"]
    customer = api.get(f"/customers/{reference_id}").json()["data"]
    return {
        "pools": [(pool["key"], pool["balance"]) for pool in pools],
        "subscriptions": [
            (s["id"], s["planId"], s["status"], s["cancelAtPeriodEnd"], s["scheduledChange"])
            for s in customer["subscriptions"]
        ],
    }


def orders(bodies: list[str], rng: random.Random) -> list[list[str]]:
    """Stripe's order, the reverse, and shuffles in which about a third arrive twice."""
    chosen = [list(bodies), list(reversed(bodies))]
    while len(chosen) < ORDERS_PER_JOURNEY:
        order = bodies + [body for body in bodies if rng.random() < 0.3]
        rng.shuffle(order)
        chosen.append(order)
    return chosen


@pytest.mark.parametrize("name", list(JOURNEYS))
def test_replayed_webhooks_in_any_order_give_the_same_credits_and_list(
    name: str, logged_in_api: tuple[WebClient, httpx.Client], app: Flask, server: str
) -> None:
    journey = JOURNEYS[name]
    client, api = logged_in_api
    sandbox: Sandbox = app.extensions["stripe_sandbox"]
    journey.run(client, sandbox)
    with app.app_context():
        reference_id = db.session.scalars(select(Customer.reference_id)).one()
        in_stripe = [
            gateway().retrieve_subscription(subscription_id)
            for subscription_id, *_ in what_the_customer_has(api, reference_id)["subscriptions"]
        ]
    live = what_the_customer_has(api, reference_id)
    # Newest first, as Stripe created them.
    assert [s.id for s in sorted(in_stripe, key=lambda s: -s.created)] == [
        s[0] for s in live["subscriptions"]
    ]
    assert [s[1] for s in live["subscriptions"]] == journey.plans_newest_first
    bodies = sent_events(app)
    outcomes = []
    for order in orders(bodies, random.Random(name)):
        forget_all_but_the_customer(app)
        deliver(server, app.config["STRIPE_WEBHOOK_SECRET"], order)
        outcomes.append(what_the_customer_has(api, reference_id))
    assert sandbox.now() > 0
    first = outcomes[0]
    assert all(outcome == first for outcome in outcomes), name
    assert first["pools"] == journey.pools
    assert first["subscriptions"] == live["subscriptions"]


@pytest.fixture
def logged_in_api(client: WebClient, synced: Flask, server: str) -> Any:
    """A browser for the customer, and the operator's API client with a key."""
    result = synced.test_cli_runner().invoke(args=["api-keys", "create", "--name", "replay"])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    with httpx.Client(
        base_url=f"{server}/api/v1/client", headers={"Authorization": f"Bearer {key}"}, timeout=10
    ) as api:
        yield client, api
