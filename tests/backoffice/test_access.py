"""The back office is for operators: anonymous visitors log in first, customers find nothing."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select

from app.accounts.models import Role, User
from app.extensions import db
from bench.volume_data import Volume, fill
from tests.backoffice.conftest import make_operator
from tests.web import WebClient, visible_text

ADMIN_PAGES = ["/admin/", "/admin/customers", "/admin/customers?q=ada&page=2"]


@pytest.mark.parametrize("page", ADMIN_PAGES)
def test_an_anonymous_visitor_is_sent_to_log_in_and_comes_back(
    app: Flask, client: WebClient, page: str
) -> None:
    response = client.get(page)
    assert response.status_code == 302
    assert response.headers["location"].startswith("/login?next=/admin/")


@pytest.mark.parametrize("page", ADMIN_PAGES)
def test_a_customer_finds_no_back_office(logged_in: WebClient, page: str) -> None:
    response = logged_in.get(page)
    assert response.status_code == 404
    assert "Back office" not in visible_text(logged_in.get("/account").text)


def test_an_operator_is_made_by_the_command_and_sees_every_customer(
    app: Flask, client: WebClient, api
) -> None:
    for number in range(3):
        api.post(
            "/customers",
            json={"customerReferenceId": f"c-{number}", "email": f"c{number}@example.com"},
        )
    created = make_operator(app, "Ops@Example.com")
    assert "ops@example.com is a new operator" in created

    login = client.submit(
        "/login?next=/admin/",
        {"email": "ops@example.com", "password": "operator horse battery", "next": "/admin/"},
    )
    assert login.headers["location"] == "/admin/"
    page = client.get("/admin/customers")
    assert page.status_code == 200
    text = visible_text(page.text)
    assert "4 customers." in text  # the three from the API and the operator's own record
    assert all(f"c{number}@example.com" in text for number in range(3))
    assert "Back office" in text
    found = visible_text(client.get("/admin/customers", params={"q": "C1@"}).text)
    assert "1 customer matching" in found
    assert "c1@example.com" in found
    assert "c2@example.com" not in found


def test_the_command_promotes_an_existing_customer_and_refuses_a_weak_password(
    app: Flask, logged_in: WebClient
) -> None:
    assert logged_in.get("/admin/").status_code == 404
    assert "ada@example.com is now an operator" in make_operator(app, "ada@example.com")
    with app.app_context():
        assert db.session.scalars(select(User)).one().role is Role.OPERATOR
    assert logged_in.get("/admin/customers").status_code == 200

    weak = app.test_cli_runner().invoke(
        args=["users", "create-operator", "new@example.com"], input="short\nshort\n"
    )
    assert weak.exit_code == 1
    assert "at least 10 characters" in weak.output


@pytest.fixture
def operator(app: Flask, client: WebClient) -> WebClient:
    make_operator(app, "ops@example.com")
    assert client.log_in("ops@example.com", "operator horse battery").status_code == 302
    return client


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"amount": "-5"}, "Grant a whole number of credits above 0."),
        ({"amount": "2.5"}, "Not a valid integer value."),
        ({"amount": ""}, "Enter how many credits to grant."),
        ({"reason": ""}, "Say why: the audit log keeps it."),
        ({"confirm": ""}, "Tick the box to confirm the grant."),
        ({"pool": "no_such_pool"}, "Not a valid choice."),
        ({"expires_on": "2020-01-31"}, "Choose a date after today."),
        ({"expires_on": "31/01/2030"}, "Not a valid date value."),
    ],
)
def test_a_bad_grant_is_refused_with_its_reason_and_writes_nothing(
    app: Flask, operator: WebClient, enterprise_customer: str, fields: dict[str, str], message: str
) -> None:
    page = f"/admin/customers/{enterprise_customer}"
    good = {"pool": "ai_tokens", "amount": "500", "reason": "Outage credit", "confirm": "y"}
    response = operator.submit(page, {**good, **fields}, action=f"{page}/credits")
    assert response.status_code == 400
    assert message in visible_text(response.text)
    assert "No operator action yet." in visible_text(operator.get("/admin/audit").text)


def test_an_operator_grants_credits_the_customer_sees_them_and_the_audit_log_keeps_why(
    app: Flask, operator: WebClient, enterprise_customer: str, api
) -> None:
    page = f"/admin/customers/{enterprise_customer}"
    before = api.get(f"/credits/{enterprise_customer}/pools").json()["data"]
    [tokens_before] = [p["balance"] for p in before if p["denomination"] == "tokens"]

    response = operator.submit(
        page,
        {"pool": "ai_tokens", "amount": "250000", "reason": "Outage on 3 Dec", "confirm": "y"},
        action=f"{page}/credits",
    )

    assert response.status_code == 302
    text = visible_text(operator.get(page).text)
    assert "Granted 250,000 to ai_tokens." in text
    assert "enterprise_monthly" in text
    assert "Outage on 3 Dec" in text
    after = api.get(f"/credits/{enterprise_customer}/pools").json()["data"]
    assert [p["balance"] for p in after if p["denomination"] == "tokens"] == [
        tokens_before + 250_000
    ]
    audit = visible_text(operator.get("/admin/audit").text)
    assert "ops@example.com" in audit
    assert "grant_credits" in audit
    assert f'{{"balance": {tokens_before}}}' in audit
    assert operator.get("/admin/customers/nobody").status_code == 404


def test_long_lists_page_on_with_their_filters_kept(app: Flask, operator: WebClient) -> None:
    with app.app_context():
        fill(Volume(customers=60, months=4, usage_events=10, usage_days=5, audit_entries=60))

    first = operator.get("/admin/customers").text
    assert "Page 1 of 2" in visible_text(first)
    assert 'href="/admin/customers?page=2">Next' in first
    second = operator.get("/admin/customers?page=2").text
    assert 'href="/admin/customers?page=1">Previous' in second
    assert ">Next<" not in second

    audit = operator.get("/admin/audit").text
    assert 'href="/admin/audit?page=2">Older' in audit
    assert ">Newer<" not in audit

    paid = operator.get("/admin/invoices?status=paid").text
    assert 'href="/admin/invoices?status=paid&amp;page=2">Next' in paid
