"""The customer's own pages make as many SQL queries for a customer with ten times the history,
among ten times the customers: neither page queries once per usage event, invoice, period,
credit lot or customer."""

from __future__ import annotations

import pytest
from flask import Flask

from bench.volume_data import BUSY_PASSWORD, Volume, fill, fill_busy_customer
from tests.query_counting import counting_queries, request_key
from tests.web import WebClient, visible_text

# A little: the seven kinds of customer over three months, and a Pro customer with two billing
# periods and 300 usage events. Then ten times as much again: 70 more customers over a year,
# and a Pro customer with twelve periods and 3,000 events.
SMALL = Volume(customers=7, months=3, usage_events=300, usage_days=30, audit_entries=5, seed=1)
LARGE = Volume(customers=70, months=12, usage_events=3_000, audit_entries=120, seed=2)
# Each page with what its customer sees on it.
PAGES = {
    "/account": "Usage this period",
    "/pricing": "Your current plan",
    "/pricing?interval=year": "Pro",
}


def _measure(app: Flask, client: WebClient, email: str) -> dict[str, tuple[int, int, str]]:
    """Each page as ``email`` sees it: (status, queries, visible text)."""
    assert client.log_in(email, BUSY_PASSWORD).status_code == 302
    measured = {}
    with counting_queries(app) as counts:
        for page in PAGES:
            client.get(page)  # the first answer may warm a cache: not counted
            counts.clear()
            response = client.get(page)
            measured[page] = (
                response.status_code,
                counts[request_key(page)],
                visible_text(response.text),
            )
    client.cookies.clear()
    return measured


@pytest.mark.parametrize("page", PAGES)
def test_a_customer_page_makes_as_many_queries_with_ten_times_the_data(
    app: Flask, client: WebClient, page: str
) -> None:
    with app.app_context():
        fill(SMALL)
        fill_busy_customer(300, months=2, email="little@volume.example")
    small = _measure(app, client, "little@volume.example")
    with app.app_context():
        fill(LARGE)
        fill_busy_customer(3_000, months=12, email="lots@volume.example")
    large = _measure(app, client, "lots@volume.example")

    (small_status, small_queries, small_text) = small[page]
    (large_status, large_queries, large_text) = large[page]
    assert (small_status, large_status) == (200, 200)
    assert PAGES[page] in small_text
    assert PAGES[page] in large_text
    assert large_queries == small_queries, (
        f"{page}: {small_queries} queries for a customer with 300 usage events over 2 periods, "
        f"{large_queries} with 3,000 over 12 among ten times the customers: a query per row"
    )
