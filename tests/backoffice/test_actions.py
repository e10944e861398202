"""What an operator does to a customer from its page: credits adjusted, the plan changed,
cancelled or resumed in Stripe, the customer re-read from Stripe; each confirmed, with a reason,
in the audit log, and refused with its reason when it cannot be done."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from flask import Flask
from sqlalchemy import select

from app.accounts.models import Customer
from app.billing.gateway import gateway
from app.extensions import db
from app.stripe_sandbox import Sandbox
from tests.factories import MadeCustomer, active_customer, log_in
from tests.web import WebClient, visible_text
from tests.webhooks.test_retries import KeyRevoked

ACTIONS = ["credits", "credits/adjust", "plan", "cancel", "resume", "resync"]


def _audit(operator: WebClient) -> str:
    return visible_text(operator.get("/admin/audit").text)


def _act(operator: WebClient, page: str, action: str, fields: dict[str, str]) -> httpx.Response:
    """Post one of the page's forms, confirmed, with a reason unless ``fields`` says otherwise."""
    return operator.submit(
        page, {"reason": "Asked by support", "confirm": "y", **fields}, action=f"{page}/{action}"
    )


@pytest.mark.parametrize("action", ACTIONS)
def test_an_anonymous_visitor_is_sent_to_log_in(
    client: WebClient, enterprise_customer: str, action: str
) -> None:
    response = client.submit("/login", {}, action=f"/admin/customers/ent-1/{action}")
    assert response.status_code == 302
    assert response.headers["location"].startswith("/login?next=/admin/customers/ent-1/")


@pytest.mark.parametrize("action", ACTIONS)
def test_a_customer_finds_nothing(
    logged_in: WebClient, enterprise_customer: str, action: str
) -> None:
    response = logged_in.submit("/account", {}, action=f"/admin/customers/ent-1/{action}")
    assert response.status_code == 404


@pytest.mark.parametrize("action", ACTIONS)
def test_an_operator_posting_nothing_is_told_what_is_missing(
    operator: WebClient, enterprise_customer: str, action: str
) -> None:
    page = "/admin/customers/ent-1"
    response = operator.submit(page, {}, action=f"{page}/{action}")
    assert response.status_code == 400
    assert "Say why: the audit log keeps it." in visible_text(response.text)
    assert "No operator action yet." in _audit(operator)


def _tokens(api: httpx.Client) -> int:
    pools = api.get("/credits/ent-1/pools").json()["data"]
    return sum(pool["balance"] for pool in pools if pool["denomination"] == "tokens")


def test_credits_removed_with_a_reason_show_in_the_ledger_and_the_audit_log(
    operator: WebClient, enterprise_customer: str, api: httpx.Client
) -> None:
    page = "/admin/customers/ent-1"
    response = _act(
        operator,
        page,
        "credits/adjust",
        {"pool": "ai_tokens", "amount": "-3000000", "reason": "Refunded usage"},
    )
    assert response.status_code == 302
    assert _tokens(api) == 7_000_000
    text = visible_text(operator.get(page).text)
    assert "Removed 3,000,000 from ai_tokens." in text
    assert "clawback -3,000,000" in text  # the pool's ledger
    audit = _audit(operator)
    assert "adjust_credits" in audit
    assert '{"balance": 10000000}' in audit
    assert '{"balance": 7000000, "adjusted": -3000000}' in audit
    assert "Refunded usage" in audit

    added = _act(operator, page, "credits/adjust", {"pool": "ai_tokens", "amount": "500"})
    assert added.status_code == 302
    assert _tokens(api) == 7_000_500


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"amount": "-10000001"}, "The pool holds only 10,000,000: a removal cannot overdraw it."),
        ({"amount": "0"}, "An adjustment of 0 changes nothing."),
        ({"amount": "2.5"}, "Not a valid integer value."),
        ({"amount": ""}, "Enter how many credits to add, or remove with a minus sign."),
        ({"reason": "  "}, "Say why: the audit log keeps it."),
        ({"confirm": ""}, "Tick the box to confirm the adjustment."),
        ({"pool": "nope"}, "Not a valid choice."),
    ],
)
def test_a_bad_adjustment_is_refused_with_its_reason_and_writes_nothing(
    operator: WebClient,
    enterprise_customer: str,
    api: httpx.Client,
    fields: dict[str, str],
    message: str,
) -> None:
    page = "/admin/customers/ent-1"
    response = _act(
        operator, page, "credits/adjust", {"pool": "ai_tokens", "amount": "-5", **fields}
    )
    assert response.status_code == 400
    assert message in visible_text(response.text)
    assert _tokens(api) == 10_000_000
    assert "No operator action yet." in _audit(operator)


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("-5", "Grant a whole number of credits above 0."),
        ("2.5", "Not a valid integer value."),
        ("", "Enter how many credits to grant."),
    ],
)
def test_a_grant_of_a_bad_amount_is_refused_and_writes_nothing(
    operator: WebClient, enterprise_customer: str, api: httpx.Client, amount: str, message: str
) -> None:
    page = "/admin/customers/ent-1"
    response = _act(operator, page, "credits", {"pool": "ai_tokens", "amount": amount})
    assert response.status_code == 400
    assert message in visible_text(response.text)
    assert _tokens(api) == 10_000_000
    assert "No operator action yet." in _audit(operator)


# The plan, changed in Stripe on the customer's behalf.


@pytest.fixture
def customer_browser(server: str) -> Iterator[WebClient]:
    """The customer's own browser, beside the operator's."""
    with WebClient(base_url=server, follow_redirects=False, timeout=10) as browser:
        yield browser


def _reference(app: Flask, made: MadeCustomer) -> str:
    with app.app_context():
        return db.session.scalars(select(Customer.reference_id).where(Customer.id == made.id)).one()


def _stripe_price(app: Flask, made: MadeCustomer) -> str | None:
    with app.app_context():
        subscription = gateway().retrieve_subscription(made.stripe_subscription_id)
        return subscription["items"].data[0].price.lookup_key


def test_operator_upgrades_now_and_the_customer_sees_it(
    operator: WebClient, synced: Flask, customer_browser: WebClient
) -> None:
    made = active_customer(synced, "starter_monthly", email="sam@example.com")
    page = f"/admin/customers/{_reference(synced, made)}"
    assert "Upgrade to Pro (monthly)" in visible_text(operator.get(page).text)

    response = _act(operator, page, "plan", {"plan": "pro_monthly", "reason": "Sales deal"})

    assert response.status_code == 302
    assert "Now on Pro, prorated and invoiced now." in visible_text(operator.get(page).text)
    assert _stripe_price(synced, made) == "pro_monthly"
    account = visible_text(log_in(customer_browser, made).get("/account").text)
    assert "$49 / month" in account
    audit = _audit(operator)
    assert "change_plan" in audit
    assert '"plan": "starter_monthly"' in audit
    assert '"plan": "pro_monthly"' in audit
    assert "Sales deal" in audit


def test_operator_downgrades_at_period_end_and_the_customer_sees_when(
    operator: WebClient, synced: Flask, customer_browser: WebClient
) -> None:
    made = active_customer(synced, "pro_monthly", email="pia@example.com")
    page = f"/admin/customers/{_reference(synced, made)}"

    response = _act(operator, page, "plan", {"plan": "starter_monthly"})

    assert response.status_code == 302
    assert "Changes to Starter at the end of the period." in visible_text(operator.get(page).text)
    assert _stripe_price(synced, made) == "pro_monthly"  # until the period ends
    account = visible_text(log_in(customer_browser, made).get("/account").text)
    assert "Your plan changes to Starter (monthly) on" in account
    assert '"scheduled_plan": "starter_monthly"' in _audit(operator)


def test_operator_cancels_at_period_end_resumes_then_cancels_now(
    operator: WebClient, synced: Flask, customer_browser: WebClient
) -> None:
    made = active_customer(synced, "starter_monthly", email="cy@example.com")
    page = f"/admin/customers/{_reference(synced, made)}"
    log_in(customer_browser, made)

    assert _act(operator, page, "cancel", {"mode": "period_end"}).status_code == 302
    assert "Your plan ends on" in visible_text(customer_browser.get("/account").text)
    text = visible_text(operator.get(page).text)
    assert "The plan ends with the current period." in text
    assert "Resume the plan" in text

    assert _act(operator, page, "resume", {"reason": "Changed their mind"}).status_code == 302
    assert "The plan renews as before." in visible_text(operator.get(page).text)
    assert "Renews" in visible_text(customer_browser.get("/account").text)

    assert _act(operator, page, "cancel", {"mode": "now"}).status_code == 302
    assert "Cancelled now." in visible_text(operator.get(page).text)
    assert "Your plan has ended." in visible_text(customer_browser.get("/account").text)
    with synced.app_context():
        stripe_status = gateway().retrieve_subscription(made.stripe_subscription_id).status
    assert stripe_status == "canceled"

    audit = _audit(operator)
    for action in ("cancel_at_period_end", "resume", "cancel_now"):
        assert action in audit
    assert '"cancel_at_period_end": true' in audit
    assert '"status": "canceled"' in audit
    assert "Changed their mind" in audit


def test_stripe_refusing_a_change_is_shown_and_writes_nothing(
    operator: WebClient, synced: Flask, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = active_customer(synced, "starter_monthly", email="di@example.com")
    page = f"/admin/customers/{_reference(synced, made)}"
    operator.get(page)

    with KeyRevoked(sandbox, monkeypatch):
        response = _act(operator, page, "plan", {"plan": "pro_monthly"})
        cancelled = _act(operator, page, "cancel", {"mode": "now"})

    for refused in (response, cancelled):
        assert refused.status_code == 409
        assert (
            "Stripe refused or did not answer, so nothing changed: Invalid API Key"
            in visible_text(refused.text)
        )
    assert _stripe_price(synced, made) == "starter_monthly"
    assert "No operator action yet." in _audit(operator)


def test_a_change_the_rules_refuse_is_shown_with_its_reason(
    operator: WebClient, free_customer: str
) -> None:
    page = f"/admin/customers/{free_customer}"
    response = _act(operator, page, "plan", {"plan": "starter_monthly"})
    assert response.status_code == 409
    assert "Start the Starter plan through checkout." in visible_text(response.text)
    resumed = _act(operator, page, "resume", {})
    assert resumed.status_code == 409
    assert "There is no cancellation to undo." in visible_text(resumed.text)
    assert "No operator action yet." in _audit(operator)


# Re-sync from Stripe.


def test_resync_repairs_what_the_mirror_missed_and_says_what(
    operator: WebClient, synced: Flask, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = active_customer(synced, "starter_monthly", email="ed@example.com")
    page = f"/admin/customers/{_reference(synced, made)}"
    # Changed in Stripe's dashboard while the webhooks were lost.
    with synced.app_context():
        gateway().update_subscription(
            made.stripe_subscription_id, {"cancel_at_period_end": True}, idempotency_key="dash-1"
        )
    assert "(cancels at period end)" not in visible_text(operator.get(page).text)

    with KeyRevoked(sandbox, monkeypatch):
        refused = _act(operator, page, "resync", {})
    assert refused.status_code == 409
    assert "Invalid API Key" in visible_text(refused.text)
    assert "No operator action yet." in _audit(operator)

    response = _act(operator, page, "resync", {"reason": "Dashboard edit"})
    assert response.status_code == 302
    text = visible_text(operator.get(page).text)
    assert re.search(r"Re-synced from Stripe: \d+ differences repaired\.", text)
    assert "(cancels at period end)" in text
    audit = _audit(operator)
    assert "resync_customer" in audit
    assert (
        f"subscriptions {made.stripe_subscription_id} cancel_at_period_end: False -> True" in audit
    )
    assert "Dashboard edit" in audit

    again = _act(operator, page, "resync", {})
    assert again.status_code == 302
    assert "Re-synced from Stripe: 0 differences repaired." in visible_text(operator.get(page).text)


def test_resync_of_a_customer_stripe_does_not_know_is_refused(
    operator: WebClient, app: Flask
) -> None:
    with app.app_context():
        reference = db.session.scalars(
            select(Customer.reference_id).where(Customer.stripe_customer_id.is_(None))
        ).one()
    page = f"/admin/customers/{reference}"
    assert "This customer has no Stripe customer yet" in visible_text(operator.get(page).text)
    response = _act(operator, page, "resync", {})
    assert response.status_code == 409
    assert "This customer has no Stripe customer yet." in visible_text(response.text)
    assert "No operator action yet." in _audit(operator)
