"""Plan changes through subscriptions.update, and the previews that must match them."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from app.stripe_sandbox import Sandbox

from .conftest import Catalog, Server, invoices_of, pay, recurring_price, set_card, subscribe

DAY = 86400


def _types(client: stripe.StripeClient, since: str) -> list[str]:
    events = client.v1.events.list(params={"limit": 100}).data
    ids = [e.id for e in events]
    return [e.type for e in events[: ids.index(since)]][::-1]


def _preview(client: stripe.StripeClient, sub_id: str, change: dict[str, Any]) -> stripe.Invoice:
    details = {k: v for k, v in change.items() if k != "payment_behavior"}
    return client.v1.invoices.create_preview(
        params={"subscription": sub_id, "subscription_details": details}  # type: ignore[typeddict-item]
    )


def test_swap_add_and_remove_items_in_one_always_invoice_update(
    client: stripe.StripeClient, server: Server, catalog: Catalog, sandbox: Sandbox
) -> None:
    addon = recurring_price(client, "Support", 500)
    team = recurring_price(client, "Team", 4500)
    sub = subscribe(client, server, catalog.monthly.id, addon.id)
    base, support = sub["items"].data
    sandbox.advance(10 * DAY)
    change = {
        "items": [
            {"id": base.id, "price": team.id},
            {"price": catalog.usage.id},
            {"id": support.id, "deleted": True},
        ],
        "proration_behavior": "always_invoice",
        "proration_date": sandbox.now(),
    }
    preview = _preview(client, sub.id, change)
    last_event = client.v1.events.list().data[0].id
    updated = client.v1.subscriptions.update(sub.id, params=change)  # type: ignore[arg-type]
    assert [(i.id == base.id, i.price.id) for i in updated["items"].data] == [
        (True, team.id),
        (False, catalog.usage.id),
    ]
    invoice = invoices_of(client, sub.id)[-1]
    assert (invoice.billing_reason, invoice.status) == ("subscription_update", "paid")
    # Team charged and Pro and Support credited for the same remaining fraction of the period.
    assert invoice.amount_paid == preview.amount_due
    assert 0 < invoice.amount_paid < 4500 - 1500 - 500
    assert [line.amount < 0 for line in invoice.lines.data].count(True) == 2
    assert _types(client, last_event) == [
        "customer.subscription.updated",
        "invoice.created",
        "invoice.finalized",
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
        "invoice_payment.paid",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]
    event = client.v1.events.list(params={"type": "customer.subscription.updated"}).data[0]
    old_prices = [i["price"]["id"] for i in event.data.previous_attributes["items"]["data"]]
    assert old_prices == [catalog.monthly.id, addon.id]


@pytest.mark.parametrize("behavior", ["create_prorations", "none"])
def test_prorations_wait_for_the_renewal_as_previewed(
    client: stripe.StripeClient, server: Server, catalog: Catalog, sandbox: Sandbox, behavior: str
) -> None:
    team = recurring_price(client, "Team", 4500)
    sub = subscribe(client, server, catalog.monthly.id)
    sandbox.advance(10 * DAY)
    change = {
        "items": [{"id": sub["items"].data[0].id, "price": team.id}],
        "proration_behavior": behavior,
        "proration_date": sandbox.now(),
    }
    preview = _preview(client, sub.id, change)
    client.v1.subscriptions.update(sub.id, params=change)  # type: ignore[arg-type]
    assert len(invoices_of(client, sub.id)) == 1
    sandbox.advance(25 * DAY)
    renewal = invoices_of(client, sub.id)[-1]
    assert renewal.amount_paid == preview.amount_due
    prorated = [
        line.amount
        for line in renewal.lines.data
        if line.parent.subscription_item_details.proration
    ]
    assert (len(prorated), renewal.amount_paid > 4500) == (
        (2, True) if behavior == "create_prorations" else (0, False)
    )


def test_monthly_to_yearly_resets_the_cycle_and_invoices_at_once(
    client: stripe.StripeClient, server: Server, catalog: Catalog, sandbox: Sandbox
) -> None:
    yearly = recurring_price(client, "Pro yearly", 15000, interval="year")
    sub = subscribe(client, server, catalog.monthly.id)
    sandbox.advance(10 * DAY)
    change = {"items": [{"id": sub["items"].data[0].id, "price": yearly.id}]}
    preview = _preview(client, sub.id, {**change, "proration_date": sandbox.now()})
    updated = client.v1.subscriptions.update(sub.id, params=change)  # type: ignore[arg-type]
    item = updated["items"].data[0]
    assert abs(updated.billing_cycle_anchor - sandbox.now()) <= 5
    assert item.current_period_start == updated.billing_cycle_anchor
    assert item.current_period_end - item.current_period_start in (365 * DAY, 366 * DAY)
    invoice = invoices_of(client, sub.id)[-1]
    assert (invoice.billing_reason, invoice.amount_paid) == (
        "subscription_update",
        preview.amount_due,
    )
    assert 15000 - 1500 < invoice.amount_paid < 15000


def _declined_upgrade(
    client: stripe.StripeClient, server: Server, catalog: Catalog, sandbox: Sandbox, **extra: Any
) -> tuple[stripe.Subscription, stripe.Price]:
    team = recurring_price(client, "Team", 4500)
    sub = subscribe(client, server, catalog.monthly.id)
    set_card(client, server, sub.customer, "4000000000000341")
    sandbox.advance(10 * DAY)
    change = {
        "items": [{"id": sub["items"].data[0].id, "price": team.id}],
        "proration_behavior": "always_invoice",
        **extra,
    }
    return client.v1.subscriptions.update(sub.id, params=change), team  # type: ignore[arg-type]


def test_declined_upgrade_applies_and_leaves_the_invoice_open_by_default(
    client: stripe.StripeClient, server: Server, catalog: Catalog, sandbox: Sandbox
) -> None:
    updated, team = _declined_upgrade(client, server, catalog, sandbox)
    assert (updated.status, updated["items"].data[0].price.id) == ("past_due", team.id)
    assert client.v1.invoices.retrieve(updated.latest_invoice).status == "open"


def test_pending_if_incomplete_keeps_the_plan_until_the_invoice_is_paid(
    client: stripe.StripeClient, server: Server, catalog: Catalog, sandbox: Sandbox
) -> None:
    updated, team = _declined_upgrade(
        client, server, catalog, sandbox, payment_behavior="pending_if_incomplete"
    )
    assert (updated.status, updated["items"].data[0].price.id) == ("active", catalog.monthly.id)
    assert updated.pending_update.subscription_items[0].price.id == team.id
    invoice = client.v1.invoices.retrieve(updated.latest_invoice)
    assert (invoice.billing_reason, invoice.status) == ("subscription_update", "open")
    set_card(client, server, updated.customer, "4242424242424242")  # retries the open invoice
    applied = client.v1.subscriptions.retrieve(updated.id)
    assert (applied.pending_update, applied["items"].data[0].price.id) == (None, team.id)
    assert client.v1.invoices.retrieve(invoice.id).status == "paid"


def test_pending_update_expires_after_23_hours(
    client: stripe.StripeClient, server: Server, catalog: Catalog, sandbox: Sandbox
) -> None:
    updated, _ = _declined_upgrade(
        client, server, catalog, sandbox, payment_behavior="pending_if_incomplete"
    )
    sandbox.advance(DAY)
    kept = client.v1.subscriptions.retrieve(updated.id)
    assert (kept.pending_update, kept["items"].data[0].price.id) == (None, catalog.monthly.id)
    expired = client.v1.events.list(
        params={"type": "customer.subscription.pending_update_expired"}
    ).data
    assert [e.data.object.id for e in expired] == [updated.id]


def test_error_if_incomplete_refuses_a_declined_upgrade(
    client: stripe.StripeClient, server: Server, catalog: Catalog, sandbox: Sandbox
) -> None:
    with pytest.raises(stripe.CardError):
        _declined_upgrade(client, server, catalog, sandbox, payment_behavior="error_if_incomplete")
    sub = client.v1.subscriptions.list().data[0]
    assert (sub.status, sub["items"].data[0].price.id) == ("active", catalog.monthly.id)


def test_price_change_during_a_trial_charges_nothing_and_keeps_the_trial(
    client: stripe.StripeClient, server: Server, catalog: Catalog
) -> None:
    team = recurring_price(client, "Team", 4500)
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "line_items": [{"price": catalog.monthly.id, "quantity": 1}],
            "success_url": "http://app.test/ok",
            "cancel_url": "http://app.test/no",
            "subscription_data": {"trial_period_days": 14},
        }
    )
    assert pay(server, session, "4242 4242 4242 4242").status == 303
    sub = client.v1.subscriptions.retrieve(
        client.v1.checkout.sessions.retrieve(session.id).subscription
    )
    change = {
        "items": [{"id": sub["items"].data[0].id, "price": team.id}],
        "proration_behavior": "always_invoice",
    }
    updated = client.v1.subscriptions.update(sub.id, params=change)  # type: ignore[arg-type]
    assert updated.status == "trialing"
    assert updated.trial_end == sub.trial_end
    assert updated["items"].data[0].price.id == team.id
    assert len(invoices_of(client, sub.id)) == 1  # only the trial's $0 invoice
