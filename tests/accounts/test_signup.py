"""Sign-up: a new account with its customer record, and a clear word for each bad input."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.accounts.models import Customer, User
from app.extensions import db
from tests.web import WebClient, visible_text


def test_signup_with_valid_details_logs_in_and_shows_account(client: WebClient, app) -> None:
    response = client.sign_up("Grace@Example.com")
    assert response.status_code == 302
    assert response.headers["location"] == "/account"

    account = client.get("/account")
    assert account.status_code == 200
    text = visible_text(account.text)
    assert "grace@example.com" in text
    assert "Welcome to Tollgate" in text
    with app.app_context():
        user = db.session.scalars(select(User)).one()
        assert user.email == "grace@example.com"
        assert user.password_hash.startswith("$argon2id$")
        assert "correct horse battery" not in user.password_hash
        assert user.customer.reference_id.startswith("tg_")
        assert user.customer.reference_id in text


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("", "correct horse battery", "Enter your email address."),
        ("not-an-email", "correct horse battery", "Enter a valid email address"),
        ("ada@example.com", "", "Choose a password."),
        ("ada@example.com", "short", "Choose a password of at least 10 characters."),
        ("ada@example.com", "password123", "This password is too easy to guess."),
        ("ada@example.com", "aaaaaaaaaaaa", "This password is too easy to guess."),
        ("ada.lovelace@example.com", "ada.lovelace!!", "must not contain your email address"),
    ],
)
def test_signup_with_bad_input_shows_message_and_creates_nothing(
    client: WebClient, app, email: str, password: str, message: str
) -> None:
    response = client.submit("/signup", {"email": email, "password": password})
    assert response.status_code == 400
    assert message in visible_text(response.text)
    with app.app_context():
        assert db.session.scalars(select(Customer)).all() == []


def test_signup_with_taken_email_and_another_password_reveals_no_account(
    client: WebClient, app
) -> None:
    assert client.sign_up("ada@example.com").status_code == 302
    other = WebClient(base_url=str(client.base_url))
    response = other.sign_up("ADA@example.com ", "another long password")
    assert response.status_code == 400
    text = visible_text(response.text)
    assert "We could not sign you up with that email and password." in text
    assert "already exists" not in text
    with app.app_context():
        assert len(db.session.scalars(select(User)).all()) == 1
    # Guessing goes at the log-in's pace: the same limits count these tries.
    for _ in range(4):
        other.sign_up("ada@example.com", "another long password")
    assert other.sign_up("ada@example.com", "another long password").status_code == 429


def test_signup_again_with_own_email_and_password_logs_in(client: WebClient, app) -> None:
    assert client.sign_up("ada@example.com").status_code == 302
    other = WebClient(base_url=str(client.base_url))
    response = other.sign_up("ada@example.com")
    assert response.status_code == 302
    assert "ada@example.com" in visible_text(other.get("/account").text)
    with app.app_context():
        assert len(db.session.scalars(select(User)).all()) == 1


def test_signup_without_csrf_token_is_refused(client: WebClient, app) -> None:
    response = client.post(
        "/signup", data={"email": "ada@example.com", "password": "correct horse battery"}
    )
    assert response.status_code == 400
    assert "security token is missing or has expired" in visible_text(response.text)
    with app.app_context():
        assert db.session.scalars(select(User)).all() == []


def test_signup_from_pricing_remembers_the_chosen_plan(client: WebClient) -> None:
    page = client.get("/signup", params={"plan": "pro_monthly"})
    assert page.status_code == 200
    assert "You picked Pro (monthly)" in visible_text(page.text)


def test_signup_with_unknown_plan_says_so(client: WebClient) -> None:
    page = client.get("/signup", params={"plan": "platinum"})
    assert page.status_code == 404
    assert "There is no plan called “platinum”" in visible_text(page.text)
