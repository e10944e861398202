"""An imported customer is claimed by its owner through an invitation link, never by sign-up."""

from __future__ import annotations

import re

import pytest
import stripe
from flask import Flask
from sqlalchemy import select

from app.accounts import invitations
from app.accounts.models import Customer, User
from app.extensions import db
from app.stripe_sandbox import Sandbox, SandboxHTTPClient
from tests.web import WebClient, visible_text


@pytest.fixture
def imported(synced: Flask, sandbox: Sandbox) -> Flask:
    """An account with one Stripe customer that Tollgate did not create, imported."""
    operator = stripe.StripeClient("sk_test_operator", http_client=SandboxHTTPClient(sandbox))
    operator.v1.customers.create({"email": "Grace@Example.com", "name": "Grace Hopper"})
    result = synced.test_cli_runner().invoke(args=["stripe", "import"])
    assert result.exit_code == 0, result.output
    return synced


def _invite(app: Flask, email: str) -> str:
    result = app.test_cli_runner().invoke(args=["users", "invite", email])
    assert result.exit_code == 0, result.output
    link = result.output.strip().splitlines()[-1]
    assert re.fullmatch(rf"{re.escape(app.config['TOLLGATE_BASE_URL'])}/claim/\S+", link)
    return link.removeprefix(app.config["TOLLGATE_BASE_URL"])


def test_signing_up_with_an_imported_customers_email_is_refused_like_a_taken_one(
    imported: Flask, client: WebClient
) -> None:
    response = client.sign_up("grace@example.com")

    assert response.status_code == 400
    assert "if you were invited, use the link in your invitation" in visible_text(response.text)
    with imported.app_context():
        assert db.session.scalars(select(User)).all() == []
        assert [c.email for c in db.session.scalars(select(Customer))] == ["grace@example.com"]


def test_the_invitation_sets_a_password_logs_in_and_is_good_once(
    imported: Flask, client: WebClient
) -> None:
    path = _invite(imported, "GRACE@example.com")
    page = client.get(path)
    assert page.status_code == 200
    assert "Choose a password for grace@example.com" in visible_text(page.text)

    weak = client.submit(path, {"password": "short"})
    assert weak.status_code == 400
    assert "at least 10 characters" in visible_text(weak.text)

    claimed = client.submit(path, {"password": "correct horse battery"})
    assert claimed.status_code == 302
    assert claimed.headers["location"] == "/account"
    account = visible_text(client.get("/account").text)
    assert "grace@example.com" in account
    with imported.app_context():
        customer = db.session.scalars(select(Customer)).one()
        assert customer.user is not None
        assert (customer.first_name, customer.last_name) == ("Grace", "Hopper")
        assert customer.reference_id == customer.stripe_customer_id

    client.post("/logout", data={"csrf_token": client.csrf_token("/account")})
    again = client.get(path)
    assert again.status_code == 400
    assert "used already: log in instead" in visible_text(again.text)
    assert client.log_in("grace@example.com").status_code == 302
    refused = imported.test_cli_runner().invoke(args=["users", "invite", "grace@example.com"])
    assert refused.exit_code == 1
    assert "No customer with the email grace@example.com is waiting" in refused.output


def test_a_forged_or_expired_invitation_is_refused(
    imported: Flask, client: WebClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _invite(imported, "grace@example.com")
    forged = client.get(path[:-3] + ("abc" if not path.endswith("abc") else "xyz"))
    assert forged.status_code == 400
    assert "not valid or has expired" in visible_text(forged.text)

    monkeypatch.setattr(invitations, "VALID_FOR_SECONDS", -1)
    expired = client.get(path)
    assert expired.status_code == 400
    assert "not valid or has expired" in visible_text(expired.text)
    with imported.app_context():
        assert db.session.scalars(select(User)).all() == []
