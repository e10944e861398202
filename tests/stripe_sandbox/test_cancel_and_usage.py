"""Cancelling at once with a final invoice, and the limits on meter event timestamps."""

from __future__ import annotations

import pytest
import stripe

from app.stripe_sandbox import Sandbox

from .conftest import Catalog, Server, invoices_of, record_usage, subscribe

DAY = 86400


def test_cancel_with_invoice_now_bills_usage_and_credits_unused_time(
    client: stripe.StripeClient, server: Server, catalog: Catalog, sandbox: Sandbox
) -> None:
    sub = subscribe(client, server, catalog.monthly.id, catalog.usage.id)
    record_usage(client, sub.customer, "5000")
    sandbox.advance(10 * DAY)
    canceled = client.v1.subscriptions.cancel(sub.id, params={"invoice_now": True, "prorate": True})
    assert canceled.status == "canceled"
    final = invoices_of(client, sub.id)[-1]
    amounts = sorted(line.amount for line in final.lines.data)
    assert amounts[0] < 0  # the unused time of Pro, credited
    assert amounts[-1] == 5000 * 2  # the usage so far
    assert final.status == "paid"
    deleted = client.v1.events.list(params={"type": "customer.subscription.deleted"}).data
    assert [e.data.object.id for e in deleted] == [sub.id]


def test_cancel_without_options_makes_no_final_invoice(
    client: stripe.StripeClient, server: Server, catalog: Catalog
) -> None:
    sub = subscribe(client, server, catalog.monthly.id)
    client.v1.subscriptions.cancel(sub.id, params={"prorate": True})
    assert len(invoices_of(client, sub.id)) == 1


@pytest.mark.parametrize("offset", [-36 * DAY, 10 * 60])
def test_meter_event_timestamp_outside_the_window_is_refused(
    client: stripe.StripeClient, catalog: Catalog, sandbox: Sandbox, offset: int
) -> None:
    customer = client.v1.customers.create(params={"email": "late@example.com"})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        record_usage(client, customer.id, "3", timestamp=sandbox.now() + offset)
    assert caught.value.param == "timestamp"
    record_usage(client, customer.id, "3", timestamp=sandbox.now() - 34 * DAY)
