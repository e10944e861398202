"""The back office is for operators: anonymous visitors log in first, customers find nothing."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select

from app.accounts.models import Role, User
from app.extensions import db
from tests.web import WebClient, visible_text

ADMIN_PAGES = ["/admin/", "/admin/customers", "/admin/customers?q=ada&page=2"]


def _make_operator(app: Flask, email: str) -> str:
    result = app.test_cli_runner().invoke(
        args=["users", "create-operator", email], input="operator horse battery\n" * 2
    )
    assert result.exit_code == 0, result.output
    return result.output


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
    created = _make_operator(app, "Ops@Example.com")
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
    assert "ada@example.com is now an operator" in _make_operator(app, "ada@example.com")
    with app.app_context():
        assert db.session.scalars(select(User)).one().role is Role.OPERATOR
    assert logged_in.get("/admin/customers").status_code == 200

    weak = app.test_cli_runner().invoke(
        args=["users", "create-operator", "new@example.com"], input="short\nshort\n"
    )
    assert weak.exit_code == 1
    assert "at least 10 characters" in weak.output
