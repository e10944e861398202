"""The margin page, a customer's margin, the accounts at risk and `flask costs report`, as an
operator sees them, on customers made through the API with costs stated on their events.

Two Enterprise customers ($499 a month, floor 60%) and a free one, all in this month:
- ent-1: $299.40 of gpt-4o -> margin $199.60, 40.0%: below its floor.
- ent-2: $4.99 of API calls and one call of a model no one prices -> margin $494.01, 99.0%.
- free-1: $0.25 of API calls, no revenue -> margin -$0.25.
Enterprise: $998 of revenue, $304.39 of cost, $693.61 of margin, 69.5%. In all, with free-1's
cost: $304.64 of cost, $693.36 of margin, 69.47% (69.5%).
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

import httpx
import pytest
from flask import Flask
from sqlalchemy import select

from app.billing.models import BillingPeriod
from app.clock import now as clock_now
from app.extensions import db
from tests.backoffice.test_query_counts import counting_queries
from tests.journeys import advance_days
from tests.web import WebClient, visible_text

PAGES = ["/admin/margin", "/admin/margin?month=2020-01", "/admin/margin?format=csv"]


def record(api: httpx.Client, reference: str, key: str, feature: str, cost: dict[str, Any]) -> None:
    response = api.post(
        "/events",
        json={
            "eventIdempotencyKey": key,
            "eventName": f"{feature}.used",
            "customerReferenceId": reference,
            "featureKey": feature,
            "usageUnits": 1,
            "costInput": cost,
        },
    )
    assert response.status_code == 201, response.text


def stated(amount: str, model: str | None = None) -> dict[str, Any]:
    return {"costAmount": amount, "currency": "usd", **({"model": model} if model else {})}


@pytest.fixture
def costs(api: httpx.Client, enterprise_customer: str, free_customer: str) -> dict[str, str]:
    """The three customers of the module's docstring and their events."""
    api.post("/customers", json={"customerReferenceId": "ent-2", "email": "e2@example.com"})
    made = api.post(
        "/subscriptions", json={"customerReferenceId": "ent-2", "planId": "enterprise_monthly"}
    )
    assert made.status_code == 201
    record(api, "ent-1", "a", "ai_chat", stated("299.40", "gpt-4o"))
    record(api, "ent-1", "b", "ai_chat", stated("0.00", "gpt-4o"))
    record(api, "ent-2", "c", "api_calls", stated("4.99"))
    record(api, "ent-2", "d", "ai_chat", {"model": "house-llm-9000", "inputTokens": 5_000})
    record(api, "free-1", "e", "api_calls", stated("0.25"))
    return {"below": "ent-1", "fine": "ent-2", "free": "free-1"}


@pytest.mark.parametrize(
    ("who", "status"), [("anonymous", 302), ("customer", 404), ("operator", 200)]
)
@pytest.mark.parametrize("page", PAGES)
def test_the_margin_page_is_for_operators_only(
    request: pytest.FixtureRequest, client: WebClient, who: str, status: int, page: str
) -> None:
    visitor = (
        client
        if who == "anonymous"
        else request.getfixturevalue("logged_in" if who == "customer" else "operator")
    )
    response = visitor.get(page)
    assert response.status_code == status
    if who == "anonymous":
        assert response.headers["location"].startswith("/login?next=/admin/margin")


def test_the_margin_page_is_in_the_back_office_menu(operator: WebClient) -> None:
    page = operator.get("/admin/risk")
    assert 'href="/admin/margin"' in page.text
    text = visible_text(operator.get("/admin/margin").text)
    assert "No customer is below its plan's floor." in text
    assert "No event with a cost in" in text


def test_the_page_shows_this_months_margin_by_tier_and_plan_and_who_is_below_the_floor(
    synced: Flask, operator: WebClient, costs: dict[str, str]
) -> None:
    page = operator.get("/admin/margin")
    assert page.status_code == 200
    text = visible_text(page.text)
    month = f"{now(synced):%B}"
    assert (
        f"Revenue, {month} $998.00 3 billing periods Cost $304.64 5 events with a cost "
        "Margin $693.36 Margin % 69.5%"
    ) in text
    # The chart of the 12 months has this month's point: 69%.
    assert f"{now(synced):%b %y}: 69%</title>" in page.text
    # By tier and plan: Enterprise, then the free plan's cost with nothing to divide it by.
    assert "Enterprise $998.00 $304.39 $693.61 69.5% 2 — 4 1" in text
    assert "Free $0.00 $0.25 -$0.25 — 1 — 1 —" in text
    assert "enterprise_monthly $998.00 $304.39 $693.61 69.5% 2" in text
    assert "1 event could not be priced: model house-llm-9000." in text
    # The most expensive features and models, the dearest first.
    lines = text[text.index("Feature Model Cost Events Unpriced") :]
    assert lines.index("ai_chat gpt-4o $299.40 2 —") < lines.index("api_calls — $5.24 2 —")
    assert "ai_chat house-llm-9000 $0.00 1 1" in lines
    # Below the floor: ent-1 only, linked to its page; the lowest margins, lowest first.
    below = text[text.index("Below their plan's floor") : text.index("The lowest margins")]
    assert "ent-1 e@example.com enterprise_monthly" in below
    assert "$998.00" not in below
    assert "$499.00 $299.40 40.0% 60% —" in below
    assert "ent-2" not in below
    assert 'href="/admin/customers/ent-1"' in page.text
    lowest = text[text.index("The lowest margins") :]
    assert lowest.index("free-1") < lowest.index("ent-1") < lowest.index("ent-2")


def test_a_month_is_chosen_from_the_last_twelve(
    synced: Flask, operator: WebClient, costs: dict[str, str]
) -> None:
    this_month = f"{now(synced):%Y-%m}"
    chosen = visible_text(operator.get(f"/admin/margin?month={this_month}").text)
    assert f"{now(synced):%B %Y}, by tier and plan" in chosen
    assert "enterprise_monthly $998.00" in chosen
    # A month outside the twelve shows this one.
    assert f"{now(synced):%B %Y}, by tier and plan" in visible_text(
        operator.get("/admin/margin?month=1999-01").text
    )


def test_the_periods_download_as_csv_one_row_per_customer_and_period(
    synced: Flask, operator: WebClient, costs: dict[str, str]
) -> None:
    page = operator.get("/admin/margin")
    assert 'href="/admin/margin?format=csv"' in page.text
    response = operator.get("/admin/margin?format=csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="margin-12-months.csv"' in response.headers["content-disposition"]
    rows = {row["reference_id"]: row for row in csv.DictReader(io.StringIO(response.text))}
    assert sorted(rows) == ["ent-1", "ent-2", "free-1"]
    with synced.app_context():
        period = db.session.scalars(
            select(BillingPeriod).where(BillingPeriod.customer_id == _id(synced, "ent-1"))
        ).one()
    assert period.ends_at is not None
    assert rows["ent-1"] == {
        "reference_id": "ent-1",
        "email": "e@example.com",
        "plan": "enterprise_monthly",
        "period_start": period.starts_at.isoformat(),
        "period_end": period.ends_at.isoformat(),
        "trialing": "no",
        "currency": "usd",
        "revenue": "49900",
        "cost": "29940",
        "margin": "19960",
        "margin_percent": "40.0%",
        "events": "2",
        "unpriced": "0",
        "floor_billed": "0",
    }
    assert (rows["ent-2"]["cost"], rows["ent-2"]["margin"], rows["ent-2"]["unpriced"]) == (
        "499",
        "49401",
        "1",
    )
    assert (rows["free-1"]["revenue"], rows["free-1"]["margin_percent"]) == ("0", "—")
    month = operator.get(f"/admin/margin?month={now(synced):%Y-%m}&format=csv")
    assert f'filename="margin-{now(synced):%Y-%m}.csv"' in month.headers["content-disposition"]
    assert month.text == response.text


def test_a_customers_page_shows_its_periods_margins_and_this_periods_costs(
    synced: Flask, operator: WebClient, costs: dict[str, str]
) -> None:
    text = visible_text(operator.get("/admin/customers/ent-1").text)
    section = text[text.index("Margin The last") : text.index("Usage events")]
    assert "The plan's margin floor is 60%." in section
    assert "enterprise_monthly $499.00 $299.40 $199.60 40.0% — 2" in section
    assert "ai_chat gpt-4o $299.40 2 —" in section
    other = visible_text(operator.get("/admin/customers/ent-2").text)
    assert "$499.00 $4.99 $494.01 99.0% — 2 (1 unpriced)" in other


def test_a_customer_below_its_floor_is_at_risk_with_the_figure(
    synced: Flask, operator: WebClient, costs: dict[str, str]
) -> None:
    text = visible_text(operator.get("/admin/risk").text)
    with synced.app_context():
        ends = db.session.scalars(
            select(BillingPeriod.ends_at).where(BillingPeriod.customer_id == _id(synced, "ent-1"))
        ).one()
    assert ends is not None
    assert "1 account at risk" in text
    assert (
        f"Margin 40.0% < floor 60% this period (to {ends:%-d %B %Y}): "
        "$299.40 of cost against $499.00 of revenue."
    ) in text
    assert "ent-2" not in text
    assert "free-1" not in text


def test_the_page_makes_as_many_queries_with_costs_as_without(
    synced: Flask, operator: WebClient, api: httpx.Client, enterprise_customer: str
) -> None:
    with counting_queries(synced) as counts:
        operator.get("/admin/margin")
        before = sum(counts.values())
        record(api, "ent-1", "a", "ai_chat", stated("299.40", "gpt-4o"))
        counts.clear()
        operator.get("/admin/margin")
        assert sum(counts.values()) == before


def test_flask_costs_report_prints_the_months_roll_up_and_the_dearest_lines(
    synced: Flask, costs: dict[str, str]
) -> None:
    runner = synced.test_cli_runner(env={"COLUMNS": "160"})  # a wide terminal: no column cut
    result = runner.invoke(args=["costs", "report"])
    assert result.exit_code == 0, result.output
    output = result.output
    assert f"Margin, {now(synced):%B %Y}" in output
    rows = [" ".join(line.replace("│", " ").split()) for line in output.splitlines()]
    assert "Enterprise $998.00 $304.39 $693.61 69.5% 2 $0 1" in rows
    assert "enterprise_monthly $998.00 $304.39 $693.61 69.5% 2 $0 1" in rows
    assert "Total $998.00 $304.64 $693.36 69.5% 3 $0 1" in rows
    assert rows.index("ai_chat gpt-4o $299.40 2 0") < rows.index("api_calls - $5.24 2 0")
    assert "1 event(s) could not be priced: models house-llm-9000." in output
    again = runner.invoke(args=["costs", "report", "--month", f"{now(synced):%Y-%m}"])
    assert again.output == output
    old = runner.invoke(args=["costs", "report", "--month", "1999-01"])
    assert old.exit_code == 2
    assert "choose one of the last 12 months" in old.output


def test_flask_costs_report_csv_writes_a_row_per_customer_and_period(
    synced: Flask, costs: dict[str, str]
) -> None:
    result = synced.test_cli_runner().invoke(args=["costs", "report", "--csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert sorted(row["reference_id"] for row in rows) == ["ent-1", "ent-2", "free-1"]
    ent = next(row for row in rows if row["reference_id"] == "ent-1")
    assert (ent["revenue"], ent["cost"], ent["margin"], ent["margin_percent"]) == (
        "49900",
        "29940",
        "19960",
        "40.0%",
    )


def now(app: Flask) -> datetime:
    """Tollgate's clock (the sandbox's)."""
    with app.app_context():
        return clock_now()


def _id(app: Flask, reference: str) -> int:
    from app.accounts.models import Customer

    with app.app_context():
        found = db.session.scalar(select(Customer.id).where(Customer.reference_id == reference))
    assert found is not None
    return found


def test_once_the_period_ends_the_last_period_below_its_floor_still_shows(
    synced: Flask, operator: WebClient, costs: dict[str, str]
) -> None:
    with synced.app_context():
        ends = db.session.scalars(
            select(BillingPeriod.ends_at).where(BillingPeriod.customer_id == _id(synced, "ent-1"))
        ).one()
    assert ends is not None
    advance_days(synced.extensions["stripe_sandbox"], (ends - now(synced)).days + 2)
    text = visible_text(operator.get("/admin/risk").text)
    assert (
        f"Margin 40.0% < floor 60% last period (to {ends:%-d %B %Y}): "
        "$299.40 of cost against $499.00 of revenue."
    ) in text
    below = visible_text(operator.get("/admin/margin").text)
    assert f"{ends:%-d %B %Y} (ended) $499.00 $299.40 40.0% 60%" in below


def test_flask_costs_settle_alerts_once_on_a_period_below_its_alert_floor(
    synced: Flask, costs: dict[str, str]
) -> None:
    runner = synced.test_cli_runner()
    first = runner.invoke(args=["costs", "settle"])
    assert first.exit_code == 0, first.output
    with synced.app_context():
        below = db.session.scalars(
            select(BillingPeriod.period_key).where(
                BillingPeriod.customer_id == _id(synced, costs["below"])
            )
        ).one()
    # Enterprise alerts below 60%: ent-1's period is at 40%, ent-2's at 99%.
    # (The worker's log line goes to stderr.)
    assert first.stdout.splitlines() == [
        f"alerted: period {below} is below its plan's margin floor"
    ]
    assert runner.invoke(args=["costs", "settle"]).stdout == "Nothing to bill or alert.\n"
