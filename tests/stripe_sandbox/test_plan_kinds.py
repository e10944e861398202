"""A plan billed in advance (a licensed price) replaced by one billed in arrears (metered
prices) within a period, as subscriptions.update and invoices.create_preview answer it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import stripe

from app.stripe_sandbox import Sandbox

from .conftest import Catalog, Server, invoices_of, record_usage, recurring_price, subscribe
from .test_shapes import samples, shape_problems

__all__ = ["samples"]  # the fixture, shared with the shape tests

HOUR = 3600


def _amounts(invoice: stripe.Invoice) -> list[tuple[str, int, bool]]:
    return [
        (line.description, line.amount, line.parent.subscription_item_details.proration)
        for line in invoice.lines.data
        if line.amount
    ]


def test_licensed_plan_replaced_by_metered_ones_credits_unused_time_on_the_next_invoice(
    client: stripe.StripeClient,
    server: Server,
    catalog: Catalog,
    sandbox: Sandbox,
    samples: dict[str, Any],
) -> None:
    fee_meter = client.v1.billing.meters.create(
        params={
            "display_name": "Plan fee",
            "event_name": "plan_fee",
            "default_aggregation": {"formula": "sum"},
        }
    )
    fee = recurring_price(client, "Enterprise", 49900, meter=fee_meter.id)
    calls = recurring_price(client, "API calls (Enterprise)", 1, meter=catalog.meter.id)
    sub = subscribe(client, server, catalog.monthly.id, catalog.usage.id)
    plan_item, usage_item = sub["items"].data
    start, end = plan_item.current_period_start, plan_item.current_period_end
    record_usage(client, sub.customer, "100")  # billed at the old 2 cents: $2
    sandbox.advance((end - start) // 2)
    at = sandbox.now()
    change = {
        "items": [
            {"id": plan_item.id, "deleted": True},
            {"id": usage_item.id, "deleted": True, "clear_usage": True},
            {"price": fee.id},
            {"price": calls.id},
        ],
        "proration_behavior": "create_prorations",
        "proration_date": at,
    }
    preview = client.v1.invoices.create_preview(
        params={"subscription": sub.id, "subscription_details": change}  # type: ignore[typeddict-item]
    )
    credit = -round(1500 * (end - at) / (end - start))
    # clear_usage has no effect on a price with a meter: its usage so far is still billed.
    assert _amounts(preview) == [
        (f"Unused time on Pro after {_day(at)}", credit, True),
        ("100 \u00d7 API calls", 200, False),
    ]
    updated = client.v1.subscriptions.update(sub.id, params=change)  # type: ignore[arg-type]
    assert [i.price.id for i in updated["items"].data] == [fee.id, calls.id]
    assert len(invoices_of(client, sub.id)) == 1  # nothing invoiced at once

    client.v1.billing.meter_events.create(
        params={
            "event_name": "plan_fee",
            "payload": {"stripe_customer_id": sub.customer, "value": "1"},
        }
    )
    record_usage(client, sub.customer, "50")  # counted by the new price only: 50 cents
    sandbox.advance(end - sandbox.now() + 2 * HOUR)
    renewal = invoices_of(client, sub.id)[-1]
    assert renewal.billing_reason == "subscription_cycle"
    assert _amounts(renewal) == [
        (f"Unused time on Pro after {_day(at)}", credit, True),
        ("100 \u00d7 API calls", 200, False),
        ("1 \u00d7 Enterprise", 49900, False),
        ("50 \u00d7 API calls (Enterprise)", 50, False),
    ]
    assert renewal.amount_due == credit + 200 + 49900 + 50
    assert shape_problems(renewal.to_dict(), samples) == []


@pytest.mark.parametrize("deleted", [True, False])
def test_clear_usage_is_refused_on_a_licensed_item(
    client: stripe.StripeClient, server: Server, catalog: Catalog, deleted: bool
) -> None:
    sub = subscribe(client, server, catalog.monthly.id, catalog.usage.id)
    plan_item = sub["items"].data[0]
    spec: dict[str, Any] = {"id": plan_item.id, "clear_usage": True}
    if deleted:
        spec["deleted"] = True
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.subscriptions.update(sub.id, params={"items": [spec]})  # type: ignore[typeddict-item]
    assert refused.value.param == "items[0][clear_usage]"
    assert client.v1.subscriptions.retrieve(sub.id)["items"].data[0].id == plan_item.id


def _day(at: int) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%d %b %Y")
