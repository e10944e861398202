"""Log-in and log-out, bad credentials, the rate limit on failures, and redirects."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.web import WebClient, visible_text


@pytest.fixture
def member(client: WebClient) -> WebClient:
    """A client for which an account exists, logged out."""
    client.sign_up("ada@example.com")
    client.submit("/account", {}, action="/logout")
    return client


def test_login_with_right_password_opens_account(member: WebClient) -> None:
    response = member.log_in("ADA@example.com")
    assert response.status_code == 302
    assert response.headers["location"] == "/account"
    assert "ada@example.com" in visible_text(member.get("/account").text)


def test_login_with_wrong_password_says_so(member: WebClient) -> None:
    response = member.log_in("ada@example.com", "wrong password!!")
    assert response.status_code == 401
    assert "That email and password do not match an account." in visible_text(response.text)
    assert member.get("/account").status_code == 302


def test_login_with_unknown_email_says_the_same(member: WebClient) -> None:
    response = member.log_in("nobody@example.com")
    assert response.status_code == 401
    assert "That email and password do not match an account." in visible_text(response.text)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"email": "", "password": "x"}, "Enter your email address."),
        ({"email": "ada@example.com", "password": ""}, "Enter your password."),
    ],
)
def test_login_with_missing_field_says_which(member: WebClient, data, message) -> None:
    response = member.submit("/login", data)
    assert response.status_code == 400
    assert message in visible_text(response.text)


def test_login_without_csrf_token_is_refused(member: WebClient) -> None:
    response = member.post(
        "/login", data={"email": "ada@example.com", "password": "correct horse battery"}
    )
    assert response.status_code == 400
    assert "security token" in visible_text(response.text)
    assert member.get("/account").status_code == 302


def test_logout_ends_the_session(logged_in: WebClient) -> None:
    response = logged_in.submit("/account", {}, action="/logout")
    assert response.status_code == 302
    assert "You are logged out." in visible_text(logged_in.get("/pricing").text)
    assert logged_in.get("/account").headers["location"].startswith("/login")


def test_logout_ends_a_copy_of_the_session_cookie_too(logged_in: WebClient, server: str) -> None:
    with WebClient(base_url=server, follow_redirects=False, timeout=10) as thief:
        thief.cookies.update(logged_in.cookies)  # the cookie, captured while logged in
        assert thief.get("/account").status_code == 200
        logged_in.submit("/account", {}, action="/logout")
        assert thief.get("/account").headers["location"].startswith("/login")


def test_sign_out_everywhere_ends_every_session_of_that_user(
    logged_in: WebClient, server: str, app: Flask
) -> None:
    with WebClient(base_url=server, follow_redirects=False, timeout=10) as laptop:
        assert laptop.log_in("ada@example.com").status_code == 302
        result = app.test_cli_runner().invoke(
            args=["users", "sign-out-everywhere", "ADA@example.com"]
        )
        assert result.exit_code == 0, result.output
        assert "Every session of ada@example.com has ended" in result.output
        for device in (logged_in, laptop):
            assert device.get("/account").headers["location"].startswith("/login")
        # Logging in again works as before.
        assert laptop.log_in("ada@example.com").status_code == 302
        assert laptop.get("/account").status_code == 200


def test_sign_out_everywhere_names_an_unknown_email(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["users", "sign-out-everywhere", "x@example.com"])
    assert result.exit_code == 1
    assert "No user with the email x@example.com." in result.output


def test_logout_without_csrf_token_keeps_the_session(logged_in: WebClient) -> None:
    assert logged_in.post("/logout").status_code == 400
    assert logged_in.get("/account").status_code == 200


def test_account_page_sends_anonymous_visitor_to_login_and_back(client: WebClient) -> None:
    client.sign_up("ada@example.com")
    client.submit("/account", {}, action="/logout")
    redirect = client.get("/account")
    assert redirect.headers["location"] == "/login?next=%2Faccount"
    token = client.csrf_token("/login?next=%2Faccount")
    response = client.post(
        "/login",
        data={
            "csrf_token": token,
            "email": "ada@example.com",
            "password": "correct horse battery",
            "next": "/account",
        },
    )
    assert response.headers["location"] == "/account"


def test_login_never_redirects_to_another_site(member: WebClient) -> None:
    token = member.csrf_token("/login")
    response = member.post(
        "/login",
        data={
            "csrf_token": token,
            "email": "ada@example.com",
            "password": "correct horse battery",
            "next": "https://evil.example/steal",
        },
    )
    assert response.headers["location"] == "/account"


def test_repeated_failed_logins_for_one_address_are_slowed_down(member: WebClient) -> None:
    for _ in range(5):
        assert member.log_in("ada@example.com", "wrong password!!").status_code == 401
    blocked = member.log_in("ada@example.com")
    assert blocked.status_code == 429
    assert "Too many attempts" in visible_text(blocked.text)
    assert int(blocked.headers["Retry-After"]) > 0
    # Another address from the same place is not locked out by someone else's failures.
    assert member.log_in("grace@example.com", "wrong password!!").status_code == 401


def test_repeated_failed_logins_from_one_ip_are_slowed_down(member: WebClient) -> None:
    for attempt in range(20):
        response = member.log_in(f"guess{attempt}@example.com", "wrong password!!")
        assert response.status_code == 401
    assert member.log_in("ada@example.com").status_code == 429


def test_successful_logins_do_not_count_toward_the_limit(member: WebClient) -> None:
    for _ in range(7):
        assert member.log_in("ada@example.com").status_code == 302
        member.submit("/account", {}, action="/logout")
