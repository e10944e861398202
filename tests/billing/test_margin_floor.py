"""The margin floor, with hand-worked figures: billed on the period's invoice through its meter,
exactly once however often the worker runs and events or webhooks come again; or, for plans that
only alert, the operator told once.

Pro monthly: $49 (4,900 cents) a month, margin floor 0.80, billed. A period whose events cost
$15.00 (1,500 cents) needs 1,500 / (1 - 0.8) = 7,500 cents of revenue to keep 80% of it, so the
floor bills 7,500 - 4,900 = 2,600 cents. At $16.00 it needs 8,000: 500 cents more.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
import stripe
from flask import Flask
from sqlalchemy import select

from app.accounts.mirror import Subscription
from app.billing.gateway import gateway, optional_id
from app.billing.margin_floor import FloorReport, settle_margin_floors
from app.billing.models import BillingPeriod
from app.billing.overage_forwarding import forward_overage
from app.extensions import db
from app.stripe_sandbox import Sandbox
from tests.factories import MadeCustomer, active_customer, log_in
from tests.journeys import DAY, advance_days
from tests.web import WebClient

FLOOR_METER = "tollgate_margin_floor"


def _spend(api: httpx.Client, customer: MadeCustomer, key: str, dollars: str) -> httpx.Response:
    """One API call whose serving cost the operator's product states."""
    answer = api.post(
        "/events",
        json={
            "eventIdempotencyKey": key,
            "eventName": "api.request",
            "customerReferenceId": customer.reference_id,
            "featureKey": "api_calls",
            "usageUnits": 1,
            "costInput": {"costAmount": dollars, "currency": "usd"},
        },
    )
    assert answer.status_code in (200, 201), answer.text
    return answer


def _settle_and_forward(app: Flask) -> FloorReport:
    """One minute of the worker: the margin floor's sweep, then the forwarder."""
    with app.app_context():
        report = settle_margin_floors()
        forward_overage()
    return report


def _floor_events(sandbox: Sandbox) -> list[int]:
    """The values of the margin floor's meter events Stripe counts (a repeat is not counted)."""
    events = sandbox.store.all("billing.meter_event")
    return [
        int(event["payload"]["value"])
        for event in events
        if event["event_name"] == FLOOR_METER and not event["_duplicate"]
    ]


def _renewal(app: Flask, sandbox: Sandbox, customer: MadeCustomer) -> stripe.Invoice:
    """The invoice Stripe makes when the running period ends (the clock moved past it)."""
    with app.app_context():
        end = _subscription(customer).current_period_end
        assert end is not None
        seconds = end.timestamp() - sandbox.now() + DAY
    advance_days(sandbox, seconds / DAY)
    with app.app_context():
        invoices = gateway().client.v1.invoices.list({"customer": customer.stripe_customer_id})
    cycles = [inv for inv in invoices.data if inv.billing_reason == "subscription_cycle"]
    return max(cycles, key=lambda invoice: invoice.created)


def _floor_lines(app: Flask, invoice: stripe.Invoice, plan_key: str) -> list[int]:
    """The amounts of the invoice's lines for the plan's margin floor price, each checked to
    say what it bills."""
    key = f"{plan_key}__margin_floor"
    with app.app_context():
        price = gateway().prices_by_lookup_key([key])[key]
    lines = [
        line
        for line in invoice.lines.data
        if line.pricing
        and line.pricing.price_details
        and optional_id(line.pricing.price_details.price) == price.id
    ]
    assert all("Usage cost above the margin floor" in str(line.description) for line in lines)
    return [line.amount for line in lines]


def _subscription(customer: MadeCustomer) -> Subscription:
    return db.session.scalars(
        select(Subscription).where(
            Subscription.stripe_subscription_id == customer.stripe_subscription_id
        )
    ).one()


def _period(app: Flask, customer: MadeCustomer) -> BillingPeriod:
    with app.app_context():
        period = db.session.scalars(
            select(BillingPeriod)
            .where(BillingPeriod.customer_id == customer.id)
            .order_by(BillingPeriod.starts_at.desc())
        ).first()
        assert period is not None
        db.session.expunge(period)
        return period


@pytest.fixture
def pro(synced: Flask) -> MadeCustomer:
    """A Pro monthly customer past its trial, in its first paid period ($49)."""
    return active_customer(synced, "pro_monthly")


def test_pro_subscription_carries_the_floor_price_outside_recurring_revenue(
    synced: Flask, pro: MadeCustomer
) -> None:
    with synced.app_context():
        stripe_subscription = gateway().retrieve_subscription(pro.stripe_subscription_id)
        prices = {item.price.lookup_key: item.price for item in stripe_subscription.items.data}
        assert _subscription(pro).monthly_amount == 4_900
        meters = {meter.id: meter.event_name for meter in gateway().meters()}
    floor = prices["pro_monthly__margin_floor"]
    assert set(prices) == {
        "pro_monthly",
        "pro_monthly__api_calls_overage",
        "pro_monthly__ai_chat_overage",
        "pro_monthly__margin_floor",
    }
    assert (floor.unit_amount, floor.currency) == (1, "usd")
    assert optional_id(floor.product) == "tollgate_margin_floor"
    assert floor.recurring is not None
    assert (floor.recurring.interval, floor.recurring.usage_type) == ("month", "metered")
    assert meters[str(floor.recurring.meter)] == FLOOR_METER


def test_an_upgrade_to_pro_brings_the_floor_price(synced: Flask, api: httpx.Client) -> None:
    starter = active_customer(synced, "starter_monthly")
    [subscription] = api.get(f"/customers/{starter.reference_id}").json()["data"]["subscriptions"]
    change = {"changeToPlanId": "pro_monthly", "changeType": "UPGRADE"}
    upgraded = api.post(f"/subscriptions/{subscription['id']}/plan-change", json=change)
    assert upgraded.status_code == 200, upgraded.text
    with synced.app_context():
        items = gateway().retrieve_subscription(starter.stripe_subscription_id).items.data
    assert "pro_monthly__margin_floor" in {item.price.lookup_key for item in items}


def test_floor_crossed_mid_period_is_billed_once_on_the_renewal_invoice(
    synced: Flask, sandbox: Sandbox, api: httpx.Client, pro: MadeCustomer, client: WebClient
) -> None:
    # $5.00 of cost: 500 / 0.2 = 2,500 cents of revenue needed, $49 is more. Nothing to bill.
    _spend(api, pro, "e1", "5.00")
    assert _settle_and_forward(synced).billed == []
    # $10.00 more crosses the floor mid-period: 1,500 / 0.2 - 4,900 = 2,600 cents.
    _spend(api, pro, "e2", "4.00")
    _spend(api, pro, "e3", "6.00")
    report = _settle_and_forward(synced)
    assert [(billed.units, billed.total) for billed in report.billed] == [(2_600, 2_600)]
    assert _period(synced, pro).floor_billed == 2_600

    log_in(client, pro)
    page = client.get("/account").text
    assert "Usage cost above your plan's margin floor" in page
    assert "$26 so far this period, billed on your next invoice" in page

    # The worker again, the events replayed, every webhook delivered twice: nothing more.
    for key, dollars in (("e1", "5.00"), ("e2", "4.00"), ("e3", "6.00")):
        assert _spend(api, pro, key, dollars).json()["data"]["replayed"] is True
    sandbox.deliver_pending(duplicate=True)
    assert _settle_and_forward(synced).billed == []
    assert _settle_and_forward(synced).billed == []
    assert _floor_events(sandbox) == [2_600]

    renewal = _renewal(synced, sandbox, pro)
    assert _floor_lines(synced, renewal, "pro_monthly") == [2_600]
    assert renewal.amount_due == 4_900 + 2_600
    # The new period starts with nothing above the floor.
    assert "margin floor" not in client.get("/account").text


def test_a_later_cost_bills_only_the_difference(
    synced: Flask, sandbox: Sandbox, api: httpx.Client, pro: MadeCustomer
) -> None:
    _spend(api, pro, "e1", "15.00")
    _settle_and_forward(synced)
    # $1 more: 1,600 / 0.2 - 4,900 = 3,100 cents in all, 500 of them new.
    _spend(api, pro, "e2", "1.00")
    report = _settle_and_forward(synced)
    assert [(billed.units, billed.total) for billed in report.billed] == [(500, 3_100)]
    assert report.billed[0].identifier.endswith(":3100")
    assert sorted(_floor_events(sandbox)) == [500, 2_600]

    renewal = _renewal(synced, sandbox, pro)
    assert _floor_lines(synced, renewal, "pro_monthly") == [3_100]


def test_a_fall_in_the_restoring_amount_takes_nothing_back(
    synced: Flask, sandbox: Sandbox, api: httpx.Client, pro: MadeCustomer
) -> None:
    _spend(api, pro, "e1", "15.00")
    _settle_and_forward(synced)
    # 10,000 API calls past the 100,000 included, at $1 per 1,000: $10 of overage, so the floor
    # would now need only 7,500 - 4,900 - 1,000 = 1,600 cents. The 2,600 billed stay billed.
    answer = api.post(
        "/events",
        json={
            "eventIdempotencyKey": "bulk",
            "eventName": "api.request",
            "customerReferenceId": pro.reference_id,
            "featureKey": "api_calls",
            "usageUnits": 110_000,
        },
    )
    assert answer.status_code == 201, answer.text
    assert _settle_and_forward(synced).billed == []
    assert _floor_events(sandbox) == [2_600]

    renewal = _renewal(synced, sandbox, pro)
    assert _floor_lines(synced, renewal, "pro_monthly") == [2_600]
    assert renewal.amount_due == 4_900 + 1_000 + 2_600


@pytest.mark.parametrize("dollars", ["5.00", "9.80"])
def test_a_margin_at_or_above_the_floor_bills_nothing(
    synced: Flask,
    sandbox: Sandbox,
    api: httpx.Client,
    pro: MadeCustomer,
    client: WebClient,
    dollars: str,
) -> None:
    # $9.80 is exactly 20% of $49: the margin is 80%, on the floor, not below it.
    _spend(api, pro, "e1", dollars)
    assert _settle_and_forward(synced).billed == []
    assert "margin floor" not in log_in(client, pro).get("/account").text

    renewal = _renewal(synced, sandbox, pro)
    assert _floor_events(sandbox) == []
    assert _floor_lines(synced, renewal, "pro_monthly") == [0]
    assert renewal.amount_due == 4_900


def test_an_alerting_plan_alerts_once_and_bills_nothing(
    synced: Flask,
    sandbox: Sandbox,
    api: httpx.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Enterprise: $499 a month, floor 0.60, alert only. $250 of cost leaves
    # (49,900 - 25,000) / 49,900 = 49.9% of the revenue: below 60%.
    customer = active_customer(synced, "enterprise_monthly")
    _spend(api, customer, "e1", "150.00")
    # 60% of $499 is $299.40: $150 of cost leaves 69.9%, above the floor.
    assert _settle_and_forward(synced).alerted == []
    _spend(api, customer, "e2", "100.00")
    with caplog.at_level(logging.INFO, logger="app.billing.margin_floor"):
        first = _settle_and_forward(synced)
        _spend(api, customer, "e3", "10.00")
        again = _settle_and_forward(synced)

    period = _period(synced, customer)
    assert first.alerted == [period.period_key]
    assert again.alerted == []
    assert period.floor_alerted_at is not None
    assert period.floor_billed == 0
    alerts: list[Any] = [r for r in caplog.records if r.getMessage() == "margin below floor"]
    assert len(alerts) == 1
    assert alerts[0].levelno == logging.WARNING
    assert (alerts[0].customer, alerts[0].plan) == (customer.reference_id, "enterprise_monthly")
    assert (alerts[0].margin, alerts[0].floor) == ("49.9%", "60.0%")
    assert _floor_events(sandbox) == []
