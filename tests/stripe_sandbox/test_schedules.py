"""Downgrades at period end with subscription schedules, and taking them back."""

from __future__ import annotations

import stripe

from app.stripe_sandbox import Sandbox

from .conftest import Catalog, Server, invoices_of, record_usage, recurring_price, subscribe

DAY = 86400


def _schedule_downgrade(
    client: stripe.StripeClient, sub: stripe.Subscription, *lower: str
) -> stripe.SubscriptionSchedule:
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    current = schedule.phases[0]
    return client.v1.subscription_schedules.update(
        schedule.id,
        params={
            "phases": [
                {
                    "items": [{"price": sub["items"].data[0].price.id, "quantity": 1}],
                    "start_date": current.start_date,
                    "end_date": current.end_date,
                },
                {"items": [{"price": p, "quantity": 1} for p in lower]},
            ],
            "end_behavior": "release",
        },
    )


def test_downgrade_with_a_metered_item_applies_at_period_end(
    client: stripe.StripeClient, server: Server, catalog: Catalog, sandbox: Sandbox
) -> None:
    team = recurring_price(client, "Team", 4500)
    sub = subscribe(client, server, team.id)
    schedule = _schedule_downgrade(client, sub, catalog.monthly.id, catalog.usage.id)
    assert client.v1.subscriptions.retrieve(sub.id).schedule == schedule.id
    assert schedule.phases[1].items[1].quantity is None  # metered prices take no quantity
    sandbox.advance(sub["items"].data[0].current_period_end - sandbox.now() + 3600 + 60)
    moved = client.v1.subscriptions.retrieve(sub.id)
    assert [i.price.id for i in moved["items"].data] == [catalog.monthly.id, catalog.usage.id]
    assert invoices_of(client, sub.id)[-1].amount_paid == 1500
    record_usage(client, sub.customer, "50")
    sandbox.advance(31 * DAY)
    assert invoices_of(client, sub.id)[-1].amount_paid == 1500 + 50 * 2


def test_a_subscription_comes_with_its_schedule_and_phase_prices_expanded(
    client: stripe.StripeClient, server: Server, catalog: Catalog
) -> None:
    team = recurring_price(client, "Team", 4500)
    sub = subscribe(client, server, team.id)
    _schedule_downgrade(client, sub, catalog.monthly.id)
    expanded = client.v1.subscriptions.retrieve(
        sub.id, params={"expand": ["schedule.phases.items.price"]}
    )
    phases = expanded.schedule.phases  # type: ignore[union-attr]
    assert [[item.price.unit_amount for item in phase.items] for phase in phases] == [
        [4500],
        [catalog.monthly.unit_amount],
    ]


def test_release_before_the_period_end_keeps_the_plan(
    client: stripe.StripeClient, server: Server, catalog: Catalog, sandbox: Sandbox
) -> None:
    team = recurring_price(client, "Team", 4500)
    sub = subscribe(client, server, team.id)
    schedule = _schedule_downgrade(client, sub, catalog.monthly.id)
    released = client.v1.subscription_schedules.release(schedule.id)
    assert (released.status, released.released_subscription) == ("released", sub.id)
    assert client.v1.subscriptions.retrieve(sub.id).schedule is None
    sandbox.advance(32 * DAY)
    kept = client.v1.subscriptions.retrieve(sub.id)
    assert kept["items"].data[0].price.id == team.id
    assert invoices_of(client, sub.id)[-1].amount_paid == 4500
