"""List endpoints as an import walks them: cursors deep into a long list, each list's filters,
and the objects Stripe leaves out of a list unless asked (canceled ones, test clocks)."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from app.stripe_sandbox import Sandbox
from app.stripe_sandbox.context import Ctx

from .conftest import Catalog, Server, subscribe

INVOICES = 3000


def _store_invoices(ctx: Ctx, count: int) -> list[str]:
    """`count` invoices, every third of customer `cus_third`; their ids newest first."""
    for n in range(count):
        customer = "cus_third" if n % 3 == 0 else "cus_other"
        ctx.save({"id": f"in_{n:05d}", "object": "invoice", "customer": customer, "created": n})
    return [f"in_{n:05d}" for n in reversed(range(count))]


def _ids(page: stripe.ListObject[Any]) -> list[str]:
    return [o.id for o in page.data]


def test_late_page_after_a_cursor_is_the_next_objects_in_list_order(
    client: stripe.StripeClient, sandbox: Sandbox
) -> None:
    newest_first = sandbox.run(_store_invoices, INVOICES)
    cursor = newest_first[2799]
    page = client.v1.invoices.list(params={"limit": 100, "starting_after": cursor})
    assert (_ids(page), page.has_more) == (newest_first[2800:2900], True)
    last = client.v1.invoices.list(params={"limit": 100, "starting_after": newest_first[2949]})
    assert (_ids(last), last.has_more) == (newest_first[2950:], False)
    before = client.v1.invoices.list(params={"limit": 100, "ending_before": cursor})
    assert (_ids(before), before.has_more) == (newest_first[2699:2799], True)


def test_late_filtered_page_skips_what_does_not_match(
    client: stripe.StripeClient, sandbox: Sandbox
) -> None:
    newest_first = sandbox.run(_store_invoices, INVOICES)
    for at in (2000, 2800):
        page = client.v1.invoices.list(
            params={"customer": "cus_third", "limit": 100, "starting_after": newest_first[at]}
        )
        matches = [i for i in newest_first[at + 1 :] if int(i[3:]) % 3 == 0]
        assert (_ids(page), page.has_more) == (matches[:100], len(matches) > 100)


def test_walking_back_with_ending_before_meets_every_object_once(
    client: stripe.StripeClient,
) -> None:
    ids = [client.v1.customers.create(params={"name": f"c{i}"}).id for i in range(25)]
    seen, cursor = [], ids[0]
    while True:
        page = client.v1.customers.list(params={"limit": 10, "ending_before": cursor})
        seen = _ids(page) + seen
        if not page.has_more:
            break
        cursor = page.data[0].id
    assert seen == ids[:0:-1]


@pytest.mark.parametrize("cursor", ["starting_after", "ending_before"])
def test_unknown_cursor_is_404_naming_it(client: stripe.StripeClient, cursor: str) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.list(params={cursor: "cus_missing"})  # type: ignore[misc]
    assert caught.value.http_status == 404
    assert (caught.value.code, caught.value.param) == ("resource_missing", cursor)


def test_customers_on_a_test_clock_are_listed_only_by_their_clock(
    client: stripe.StripeClient, sandbox: Sandbox
) -> None:
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": sandbox.now()})
    plain = client.v1.customers.create(params={"email": "ada@example.com"})
    clocked = client.v1.customers.create(
        params={"email": "ada@example.com", "test_clock": clock.id}
    )
    assert _ids(client.v1.customers.list()) == [plain.id]
    assert _ids(client.v1.customers.list(params={"test_clock": clock.id})) == [clocked.id]
    assert _ids(client.v1.customers.list(params={"email": "Ada@example.com"})) == []
    created = {"gte": plain.created, "lte": plain.created}
    assert _ids(client.v1.customers.list(params={"created": created})) == [plain.id]
    assert _ids(client.v1.customers.list(params={"created": {"gt": plain.created}})) == []


def test_subscriptions_default_list_leaves_out_canceled_and_all_or_ended_bring_them(
    client: stripe.StripeClient, server: Server, catalog: Catalog, sandbox: Sandbox
) -> None:
    active = subscribe(client, server, catalog.monthly.id)
    canceled = client.v1.subscriptions.cancel(subscribe(client, server, catalog.monthly.id).id)
    customer = client.v1.customers.create()
    expired = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": catalog.monthly.id}]}
    )
    # Stripe expires an incomplete subscription whose first invoice stays unpaid for 23 hours;
    # the sandbox does not yet, so the test sets the status.
    sandbox.run(
        lambda ctx: ctx.save(
            {**ctx.fetch("subscription", expired.id), "status": "incomplete_expired"}
        )
    )

    def listed(**params: Any) -> set[str]:
        return {s.id for s in client.v1.subscriptions.list(params=params).auto_paging_iter()}

    assert listed() == {active.id, expired.id}
    assert listed(status="all") == {active.id, canceled.id, expired.id}
    assert listed(status="ended") == {canceled.id, expired.id}
    assert listed(status="canceled") == {canceled.id}
    assert listed(status="all", price=catalog.usage.id) == set()
    assert listed(status="all", customer=customer.id) == {expired.id}


def test_subscriptions_on_a_test_clock_are_listed_by_clock_or_customer(
    client: stripe.StripeClient, catalog: Catalog, sandbox: Sandbox
) -> None:
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": sandbox.now()})
    customer = client.v1.customers.create(params={"test_clock": clock.id})
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": catalog.monthly.id}]}
    )
    assert _ids(client.v1.subscriptions.list(params={"status": "all"})) == []
    assert _ids(client.v1.subscriptions.list(params={"test_clock": clock.id})) == [sub.id]
    assert _ids(client.v1.subscriptions.list(params={"customer": customer.id})) == [sub.id]


def test_unmodelled_subscription_filter_is_refused(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.subscriptions.list(params={"current_period_end": {"gt": 1}})
    assert caught.value.param == "current_period_end"


def test_subscription_schedules_list_by_customer_state_and_timestamps(
    client: stripe.StripeClient, catalog: Catalog, sandbox: Sandbox
) -> None:
    def schedule_for(customer: stripe.Customer) -> stripe.SubscriptionSchedule:
        sub = client.v1.subscriptions.create(
            params={"customer": customer.id, "items": [{"price": catalog.monthly.id}]}
        )
        return client.v1.subscription_schedules.create(params={"from_subscription": sub.id})

    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": sandbox.now()})
    on_clock = client.v1.customers.create(params={"test_clock": clock.id})
    kept, released, clocked = (
        schedule_for(client.v1.customers.create()),
        schedule_for(client.v1.customers.create()),
        schedule_for(on_clock),
    )
    released = client.v1.subscription_schedules.release(released.id)

    def listed(**params: Any) -> list[str]:
        return _ids(client.v1.subscription_schedules.list(params=params))

    assert listed() == [released.id, kept.id]
    assert listed(customer=on_clock.id) == [clocked.id]
    assert listed(released_at={"gte": released.released_at}) == [released.id]
    assert listed(scheduled=True) == []
    assert listed(scheduled=False, created={"lte": kept.created}) == [released.id, kept.id]


def test_events_list_by_created_range_type_wildcard_and_types(
    client: stripe.StripeClient, sandbox: Sandbox
) -> None:
    customer = client.v1.customers.create()
    sandbox.advance(60)
    client.v1.customers.update(customer.id, params={"name": "Ada"})
    client.v1.products.create(params={"name": "Pro"})

    def types(**params: Any) -> list[str]:
        return [e.type for e in client.v1.events.list(params=params).data]

    assert types(created={"gt": customer.created}) == ["product.created", "customer.updated"]
    assert types(created={"lte": customer.created}) == ["customer.created"]
    assert types(type="customer.*") == ["customer.updated", "customer.created"]
    assert types(types=["product.created", "customer.created"]) == [
        "product.created",
        "customer.created",
    ]
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.events.list(params={"type": "customer.created", "types": ["customer.updated"]})
    assert caught.value.param == "types"
