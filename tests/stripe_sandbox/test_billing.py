"""Renewals, usage, upgrades, cancellations and schedules on the sandbox clock."""

from __future__ import annotations

import stripe

from app.stripe_sandbox import Sandbox

from .conftest import Catalog, Server, invoices_of, recurring_price, subscribe

DAY = 86400


def test_renewal_moves_item_period_and_pays_an_hour_later(
    client: stripe.StripeClient, server: Server, catalog: Catalog, sandbox: Sandbox
) -> None:
    sub = subscribe(client, server, catalog.monthly.id)
    item = sub["items"].data[0]
    until_renewal = item.current_period_end - sandbox.now()
    sandbox.advance(until_renewal + 60)
    renewal = invoices_of(client, sub.id)[-1]
    assert (renewal.billing_reason, renewal.status) == ("subscription_cycle", "draft")
    sandbox.advance(3600)
    renewed = client.v1.subscriptions.retrieve(sub.id)
    assert renewed["items"].data[0].current_period_start == item.current_period_end
    assert client.v1.invoices.retrieve(renewal.id).status == "paid"
    assert renewed.status == "active"


def test_advancing_65_days_crosses_two_renewals(
    client: stripe.StripeClient, server: Server, catalog: Catalog, sandbox: Sandbox
) -> None:
    sub = subscribe(client, server, catalog.monthly.id)
    sandbox.advance(65 * DAY)
    reasons = [(i.billing_reason, i.status, i.amount_paid) for i in invoices_of(client, sub.id)]
    assert reasons == [
        ("subscription_create", "paid", 1500),
        ("subscription_cycle", "paid", 1500),
        ("subscription_cycle", "paid", 1500),
    ]


def test_metered_usage_is_billed_on_the_renewal_invoice(
    client: stripe.StripeClient, server: Server, catalog: Catalog, sandbox: Sandbox
) -> None:
    sub = subscribe(client, server, catalog.monthly.id, catalog.usage.id)
    for n, value in enumerate(("120", "80")):
        client.v1.billing.meter_events.create(
            params={
                "event_name": "api_call",
                "identifier": f"batch-{n}",
                "payload": {"stripe_customer_id": sub.customer, "value": value},
            }
        )
    # A retried batch with the same identifier is not counted twice.
    client.v1.billing.meter_events.create(
        params={
            "event_name": "api_call",
            "identifier": "batch-1",
            "payload": {"stripe_customer_id": sub.customer, "value": "80"},
        }
    )
    sandbox.advance(31 * DAY + 3600)
    renewal = invoices_of(client, sub.id)[-1]
    usage_line = next(
        line
        for line in renewal.lines.data
        if line.parent.subscription_item_details.subscription_item == sub["items"].data[1].id
    )
    assert (usage_line.quantity, usage_line.amount) == (200, 400)
    assert renewal.amount_paid == 1500 + 400


def test_upgrade_always_invoice_charges_the_previewed_proration(
    client: stripe.StripeClient, server: Server, catalog: Catalog, sandbox: Sandbox
) -> None:
    sub = subscribe(client, server, catalog.monthly.id)
    team = recurring_price(client, "Team", 4500)
    sandbox.advance(10 * DAY)
    change = {
        "items": [{"id": sub["items"].data[0].id, "price": team.id}],
        "proration_behavior": "always_invoice",
        "proration_date": sandbox.now(),
    }
    preview = client.v1.invoices.create_preview(
        params={"subscription": sub.id, "subscription_details": change}
    )
    assert 0 < preview.amount_due < 4500 - 1500
    client.v1.subscriptions.update(sub.id, params=change)  # type: ignore[arg-type]
    invoice = invoices_of(client, sub.id)[-1]
    assert invoice.billing_reason == "subscription_update"
    assert invoice.amount_paid == preview.amount_due
    assert client.v1.subscriptions.retrieve(sub.id)["items"].data[0].price.id == team.id


def test_cancel_at_period_end_keeps_access_until_period_end(
    client: stripe.StripeClient, server: Server, catalog: Catalog, sandbox: Sandbox
) -> None:
    sub = subscribe(client, server, catalog.monthly.id)
    marked = client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert (marked.status, marked.cancel_at) == ("active", sub["items"].data[0].current_period_end)
    sandbox.advance(31 * DAY)
    ended = client.v1.subscriptions.retrieve(sub.id)
    assert ended.status == "canceled"
    assert len(invoices_of(client, sub.id)) == 1
    event = client.v1.events.list(params={"type": "customer.subscription.updated"}).data[0]
    assert event.data.previous_attributes["cancel_at_period_end"] is False


def test_cancel_now_deletes_at_once(
    client: stripe.StripeClient, server: Server, catalog: Catalog
) -> None:
    sub = subscribe(client, server, catalog.monthly.id)
    assert client.v1.subscriptions.cancel(sub.id).status == "canceled"
    deleted = client.v1.events.list(params={"type": "customer.subscription.deleted"}).data
    assert [e.data.object.id for e in deleted] == [sub.id]
    assert client.v1.subscriptions.list(params={"customer": sub.customer}).data == []


def test_schedule_downgrades_at_period_end(
    client: stripe.StripeClient, server: Server, catalog: Catalog, sandbox: Sandbox
) -> None:
    team = recurring_price(client, "Team", 4500)
    sub = subscribe(client, server, team.id)
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    current = schedule.phases[0]
    client.v1.subscription_schedules.update(
        schedule.id,
        params={
            "phases": [
                {
                    "items": [{"price": team.id}],
                    "start_date": current.start_date,
                    "end_date": current.end_date,
                },
                {"items": [{"price": catalog.monthly.id}]},
            ]
        },
    )
    assert client.v1.subscriptions.retrieve(sub.id)["items"].data[0].price.id == team.id
    sandbox.advance(31 * DAY + 3600)
    assert client.v1.subscriptions.retrieve(sub.id)["items"].data[0].price.id == (
        catalog.monthly.id
    )
    assert invoices_of(client, sub.id)[-1].amount_paid == 1500
    sandbox.advance(31 * DAY)
    assert client.v1.subscription_schedules.retrieve(schedule.id).status == "completed"
    assert client.v1.subscriptions.retrieve(sub.id).schedule is None


def test_test_clock_moves_only_its_own_customers(
    client: stripe.StripeClient, server: Server, catalog: Catalog, sandbox: Sandbox
) -> None:
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": sandbox.now()})
    customer = client.v1.customers.create(params={"test_clock": clock.id})
    on_clock = subscribe(client, server, catalog.monthly.id, customer=customer.id)
    elsewhere = subscribe(client, server, catalog.monthly.id)
    advanced = client.v1.test_helpers.test_clocks.advance(
        clock.id, params={"frozen_time": clock.frozen_time + 32 * DAY}
    )
    assert advanced.status == "ready"
    assert len(invoices_of(client, on_clock.id)) == 2
    assert len(invoices_of(client, elsewhere.id)) == 1
