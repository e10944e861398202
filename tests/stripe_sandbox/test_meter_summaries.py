"""Meter event summaries: what Stripe counted for a customer, over a range or by hour or day,
to reconcile usage against; repeated identifiers are not counted, as Stripe does."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from app.stripe_sandbox import Sandbox

from .conftest import Catalog, record_usage

HOUR, DAY = 3600, 86400


@pytest.fixture
def yesterday(sandbox: Sandbox) -> int:
    """The start of yesterday (UTC), whose hours are all in the past."""
    return sandbox.now() // DAY * DAY - DAY


def _summaries(
    client: stripe.StripeClient, catalog: Catalog, customer: str, start: int, end: int, **extra: Any
) -> list[tuple[int, int, float]]:
    params = {"customer": customer, "start_time": start, "end_time": end, **extra}
    listed = client.v1.billing.meters.event_summaries.list(catalog.meter.id, params=params)
    return [(s.start_time, s.end_time, s.aggregated_value) for s in listed.auto_paging_iter()]


def test_summary_sums_the_customers_counted_events_in_the_range(
    client: stripe.StripeClient, catalog: Catalog, yesterday: int
) -> None:
    ada, bob = client.v1.customers.create().id, client.v1.customers.create().id
    record_usage(client, ada, "5", timestamp=yesterday)  # start_time is included
    record_usage(client, ada, "2.5", timestamp=yesterday + HOUR, identifier="call-1")
    record_usage(client, ada, "2.5", timestamp=yesterday + HOUR, identifier="call-1")
    record_usage(client, ada, "7", timestamp=yesterday + 2 * HOUR)  # end_time is not
    record_usage(client, bob, "100", timestamp=yesterday + HOUR)
    assert _summaries(client, catalog, ada, yesterday, yesterday + 2 * HOUR) == [
        (yesterday, yesterday + 2 * HOUR, 7.5)
    ]
    assert _summaries(client, catalog, bob, yesterday + 3 * HOUR, yesterday + 4 * HOUR) == [
        (yesterday + 3 * HOUR, yesterday + 4 * HOUR, 0)
    ]


def test_hourly_and_daily_summaries_are_the_windows_with_usage_newest_first(
    client: stripe.StripeClient, catalog: Catalog, yesterday: int
) -> None:
    ada = client.v1.customers.create().id
    for offset, value in ((10, "1"), (HOUR + 59, "2"), (HOUR + 60, "3"), (5 * HOUR, "4")):
        record_usage(client, ada, value, timestamp=yesterday + offset)
    hourly = _summaries(
        client, catalog, ada, yesterday, yesterday + DAY, value_grouping_window="hour", limit=1
    )
    assert hourly == [
        (yesterday + 5 * HOUR, yesterday + 6 * HOUR, 4),
        (yesterday + HOUR, yesterday + 2 * HOUR, 5),
        (yesterday, yesterday + HOUR, 1),
    ]
    daily = _summaries(
        client, catalog, ada, yesterday - DAY, yesterday + DAY, value_grouping_window="day"
    )
    assert daily == [(yesterday, yesterday + DAY, 10)]


@pytest.mark.parametrize(
    ("start", "end", "window", "param"),
    [
        (30, HOUR, None, "start_time"),
        (0, HOUR + 1, None, "end_time"),
        (60, HOUR, "hour", "start_time"),
        (0, HOUR, "day", "end_time"),
        (0, DAY, "week", "value_grouping_window"),
        (HOUR, HOUR, None, "end_time"),
    ],
)
def test_summaries_refuse_times_off_the_windows_boundaries(
    client: stripe.StripeClient,
    catalog: Catalog,
    yesterday: int,
    start: int,
    end: int,
    window: str | None,
    param: str,
) -> None:
    ada = client.v1.customers.create().id
    extra = {"value_grouping_window": window} if window else {}
    with pytest.raises(stripe.InvalidRequestError) as caught:
        _summaries(client, catalog, ada, yesterday + start, yesterday + end, **extra)
    assert (caught.value.http_status, caught.value.param) == (400, param)


def test_summaries_need_a_customer_and_a_known_meter(
    client: stripe.StripeClient, catalog: Catalog, yesterday: int
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.billing.meters.event_summaries.list(
            catalog.meter.id,
            params={"start_time": yesterday, "end_time": yesterday + DAY},  # type: ignore[typeddict-item]
        )
    assert (caught.value.code, caught.value.param) == ("parameter_missing", "customer")
    ada = client.v1.customers.create().id
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.billing.meters.event_summaries.list(
            "mtr_missing",
            params={"customer": ada, "start_time": yesterday, "end_time": yesterday + DAY},
        )
    assert missing.value.http_status == 404
