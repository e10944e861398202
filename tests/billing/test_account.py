"""The account page: what the customer sees, and every change it can make to its plan."""

from __future__ import annotations

import re

import httpx
import pytest
from flask import Flask
from sqlalchemy import select

from app.accounts.mirror import Invoice, Subscription
from app.billing.gateway import gateway
from app.entitlements.models import CreditLedgerEntry, LedgerKind
from app.extensions import db
from app.stripe_sandbox import Sandbox
from tests.factories import active_customer, log_in, newest_subscription, trialing_customer
from tests.journeys import FAILING_CARD, advance_days, click, form_value, press
from tests.web import WebClient, visible_text


def _account(client: WebClient) -> str:
    return visible_text(client.get("/account").text)


def _post(client: WebClient, action: str, data: dict[str, str] | None = None, htmx: bool = False):
    return click(client, action, data, htmx)


def _confirm_upgrade(
    client: WebClient, preview: httpx.Response, plan_key: str, htmx: bool = False
) -> httpx.Response:
    """Press the preview's confirm button: post its proration date back."""
    proration_date = form_value(preview.text, "proration_date")
    return press(
        client, preview.text, f"/account/plan/{plan_key}", {"proration_date": proration_date}, htmx
    )


@pytest.fixture
def active_starter(client: WebClient, synced: Flask) -> WebClient:
    """A customer on Starter, past its trial, with a card that pays, logged in."""
    log_in(client, active_customer(synced, "starter_monthly"))
    assert "Active" in _account(client)
    return client


def test_account_shows_plan_status_period_credits_and_invoices(active_starter: WebClient) -> None:
    text = _account(active_starter)
    assert "Starter" in text
    assert "$19 / month" in text
    assert "Current period" in text
    assert "Renews" in text
    assert "200,000 tokens left" in text
    assert "Invoices" in text
    assert "$19" in text
    assert "paid" in text
    assert "Change card or billing details" in text


def test_upgrade_shows_amount_due_then_charges_exactly_that(
    active_starter: WebClient, synced: Flask
) -> None:
    confirm = active_starter.get("/account/plan/pro_monthly")
    assert confirm.status_code == 200
    amount = re.search(r'id="amount-due">\$([0-9.,]+)<', confirm.text)
    assert amount, "the preview shows the amount due now"
    due_cents = round(float(amount.group(1).replace(",", "")) * 100)
    assert 0 < due_cents < 4900 - 1900
    response = _confirm_upgrade(active_starter, confirm, "pro_monthly")
    assert response.status_code == 302
    text = _account(active_starter)
    assert "You are now on the Pro plan." in text
    assert "$49 / month" in text
    # Pro's credits hold at once: Starter's 200,000 plus the 800,000 difference for this period.
    assert "1,000,000 tokens left" in text
    with synced.app_context():
        upgrade_invoice = db.session.scalars(
            select(Invoice).where(Invoice.billing_reason == "subscription_update")
        ).one()
        assert upgrade_invoice.amount_paid == due_cents
        assert upgrade_invoice.status == "paid"


def test_upgrade_posted_twice_changes_and_charges_once(
    active_starter: WebClient, synced: Flask
) -> None:
    confirm = active_starter.get("/account/plan/pro_monthly")
    first = _confirm_upgrade(active_starter, confirm, "pro_monthly")
    second = _confirm_upgrade(active_starter, confirm, "pro_monthly")
    assert first.status_code == second.status_code == 302
    assert "You are already on the Pro plan." in _account(active_starter)
    with synced.app_context():
        updates = db.session.scalars(
            select(Invoice).where(Invoice.billing_reason == "subscription_update")
        ).all()
        assert len(updates) == 1


def test_upgrade_only_stripe_heard_of_still_tops_up_credits_once(
    active_starter: WebClient, synced: Flask, sandbox: Sandbox
) -> None:
    # The upgrade reached Stripe, then the process stopped before writing anything of it: only
    # Stripe's webhooks tell Tollgate, some of them twice.
    stripe_subscription_id = newest_subscription(synced).stripe_subscription_id
    with synced.app_context():
        plan_item = gateway().retrieve_subscription(stripe_subscription_id)["items"].data[0]
        pro = gateway().prices_by_lookup_key(["pro_monthly"])["pro_monthly"]
        gateway().update_subscription(
            stripe_subscription_id,
            {"items": [{"id": plan_item.id, "price": pro.id}], "proration_behavior": "none"},
            idempotency_key="upgrade-before-a-crash",
        )
    sandbox.deliver_pending(duplicate=True)
    text = _account(active_starter)
    assert "$49 / month" in text
    # Starter's 200,000 plus the 800,000 difference, once however often the change is heard.
    assert "1,000,000 tokens left" in text


def test_declined_upgrade_keeps_the_plan_and_says_why(
    active_starter: WebClient, synced: Flask
) -> None:
    portal = active_starter.post(
        "/account/billing-portal", data={"csrf_token": active_starter.csrf_token("/account")}
    )
    assert portal.status_code == 303
    changed = active_starter.post(
        portal.headers["location"],
        data={"action": "card", "card_number": FAILING_CARD, "expiry": "12 / 34"},
    )
    assert "Your payment method was updated." in visible_text(changed.text)
    confirm = active_starter.get("/account/plan/pro_monthly")
    response = _confirm_upgrade(active_starter, confirm, "pro_monthly", htmx=True)
    assert response.status_code == 200
    fragment = visible_text(response.text)
    assert "Your card was declined, so your plan was not changed." in fragment
    assert "Starter" in fragment
    assert newest_subscription(synced).plan_key == "starter_monthly"


def test_downgrade_is_scheduled_shown_and_applied_at_renewal(
    client: WebClient, synced: Flask, sandbox: Sandbox
) -> None:
    log_in(client, active_customer(synced, "pro_monthly"))
    confirm = visible_text(client.get("/account/plan/starter_monthly").text)
    assert "You keep your current plan until" in confirm
    assert _post(client, "/account/plan/starter_monthly").status_code == 302
    text = _account(client)
    assert "Your plan changes to Starter (monthly) on" in text
    assert "Pro" in text
    assert newest_subscription(synced).plan_key == "pro_monthly"

    advance_days(sandbox, 31)
    text = _account(client)
    assert "Starter" in text
    assert "$19 / month" in text
    assert "Your plan changes to" not in text
    subscription = newest_subscription(synced)
    assert subscription.plan_key == "starter_monthly"
    assert subscription.scheduled_plan_key is None


def test_scheduled_downgrade_can_be_undone(
    client: WebClient, synced: Flask, sandbox: Sandbox
) -> None:
    log_in(client, active_customer(synced, "pro_monthly"))
    _post(client, "/account/plan/starter_monthly")
    response = _post(client, "/account/plan/undo", htmx=True)
    fragment = visible_text(response.text)
    assert "You keep your current plan." in fragment
    assert "Your plan changes to" not in fragment
    advance_days(sandbox, 31)
    assert newest_subscription(synced).plan_key == "pro_monthly"
    assert "$49 / month" in _account(client)


def test_switch_to_yearly_is_immediate_and_back_to_monthly_waits(
    client: WebClient, synced: Flask
) -> None:
    log_in(client, active_customer(synced, "pro_monthly"))
    confirm = client.get("/account/plan/pro_yearly")
    assert "Upgrade to Pro (yearly)" in visible_text(confirm.text)
    _confirm_upgrade(client, confirm, "pro_yearly")
    yearly = _account(client)
    assert "$490 / year" in yearly
    # A new yearly period starts at once with its 12,000,000 tokens; what was left rolls over.
    assert "13,500,000 tokens left" in yearly
    _post(client, "/account/plan/pro_monthly")
    assert "Your plan changes to Pro (monthly) on" in _account(client)


def test_cancel_at_period_end_then_resume(
    active_starter: WebClient, synced: Flask, sandbox: Sandbox
) -> None:
    response = _post(active_starter, "/account/cancel", {"mode": "period_end"}, htmx=True)
    fragment = visible_text(response.text)
    assert "Your plan will end with the current period." in fragment
    assert "Your plan ends on" in fragment
    # Its credits do not come back next period: the plan is not renewing.
    assert "Your plan ends with this period, and its credits with it." in fragment
    assert "200,000 more on" not in fragment
    assert newest_subscription(synced).cancel_at_period_end
    _post(active_starter, "/account/resume")
    text = _account(active_starter)
    assert "Your plan will renew as before." in text
    assert "Renews" in text
    assert "200,000 more on" in text
    advance_days(sandbox, 31)
    assert newest_subscription(synced).status.value == "active"


def test_cancel_resume_cancel_within_a_second_keeps_tollgate_and_stripe_equal(
    active_starter: WebClient, synced: Flask
) -> None:
    for action, data in [
        ("/account/cancel", {"mode": "period_end"}),
        ("/account/resume", {}),
        ("/account/cancel", {"mode": "period_end"}),
    ]:
        assert _post(active_starter, action, data).status_code == 302
    mirrored = newest_subscription(synced)
    with synced.app_context():
        in_stripe = gateway().retrieve_subscription(mirrored.stripe_subscription_id)
    assert in_stripe.cancel_at_period_end is True
    assert mirrored.cancel_at_period_end is True
    assert "Your plan ends on" in _account(active_starter)


def test_same_cancel_form_posted_twice_is_one_change(
    active_starter: WebClient, synced: Flask
) -> None:
    page = active_starter.get("/account").text
    for _ in range(2):
        press(active_starter, page, "/account/cancel", {"mode": "period_end"})
    # The second post replays the first in Stripe: one change, and the mirror agrees.
    with synced.app_context():
        events = gateway().client.v1.events.list({"type": "customer.subscription.updated"})
        changes = [
            event
            for event in events.data
            if event.data.to_dict().get("previous_attributes", {}).get("cancel_at_period_end")
            is False
        ]
    assert len(changes) == 1
    assert newest_subscription(synced).cancel_at_period_end is True


def test_cancelling_with_a_scheduled_downgrade_says_it_drops_it(
    active_starter: WebClient, synced: Flask, sandbox: Sandbox
) -> None:
    preview = active_starter.get("/account/plan/pro_monthly")
    _confirm_upgrade(active_starter, preview, "pro_monthly")
    _post(active_starter, "/account/plan/starter_monthly")
    text = _account(active_starter)
    assert "Your plan changes to Starter (monthly) on" in text
    assert "Cancelling also drops your scheduled change to Starter." in text
    _post(active_starter, "/account/cancel", {"mode": "period_end"})
    _post(active_starter, "/account/resume")
    text = _account(active_starter)
    assert "Your plan changes to Starter" not in text
    advance_days(sandbox, 31)
    # Resumed, it renews on the plan it had, as the page said.
    assert newest_subscription(synced).plan_key == "pro_monthly"


def test_cancel_at_period_end_ends_access_when_the_period_ends(
    active_starter: WebClient, synced: Flask, sandbox: Sandbox
) -> None:
    _post(active_starter, "/account/cancel", {"mode": "period_end"})
    advance_days(sandbox, 31)
    assert newest_subscription(synced).status.value == "canceled"
    assert "Your plan has ended" in _account(active_starter)


def test_cancel_now_needs_confirmation_then_ends_the_plan(
    active_starter: WebClient, synced: Flask
) -> None:
    confirm = visible_text(active_starter.get("/account/cancel").text)
    assert "Your plan ends immediately" in confirm
    refused = _post(active_starter, "/account/cancel", {"mode": "now"})
    assert refused.status_code == 400
    assert newest_subscription(synced).status.value == "active"
    _post(active_starter, "/account/cancel", {"mode": "now", "confirm": "yes"})
    text = _account(active_starter)
    assert "Your plan is cancelled." in text
    assert "Your plan has ended" in text
    assert "0 tokens left" in text
    assert newest_subscription(synced).status.value == "canceled"
    # The operator's ledger says why the credits went: taken back, not expired.
    with synced.app_context():
        last = db.session.scalars(
            select(CreditLedgerEntry).order_by(CreditLedgerEntry.id.desc())
        ).first()
        assert last is not None
        assert (last.kind, last.amount) == (LedgerKind.CLAWBACK, -200_000)


def test_trialing_customer_can_cancel_and_the_trial_ends(client: WebClient, synced: Flask) -> None:
    log_in(client, trialing_customer(synced, "pro_monthly"))
    assert "Trial: 14 days left" in _account(client)
    _post(client, "/account/cancel", {"mode": "now", "confirm": "yes"})
    assert newest_subscription(synced).status.value == "canceled"
    with synced.app_context():
        stripe_subscription = gateway().retrieve_subscription(
            newest_subscription(synced).stripe_subscription_id
        )
        assert stripe_subscription.status == "canceled"


def test_free_customer_upgrades_through_checkout_and_free_plan_ends(
    client: WebClient, synced: Flask, sandbox: Sandbox
) -> None:
    log_in(client, active_customer(synced, "free"))
    confirm = visible_text(client.get("/account/plan/pro_monthly").text)
    assert "Paid plans start through a secure checkout" in confirm
    checkout = _post(client, "/checkout/pro_monthly")
    assert checkout.status_code == 303
    success = client.post(
        checkout.headers["location"],
        data={"card_number": "4242 4242 4242 4242", "expiry": "12 / 34"},
    )
    client.get(success.headers["location"])
    sandbox.deliver_pending()
    with synced.app_context():
        statuses = {s.plan_key: s.status.value for s in db.session.scalars(select(Subscription))}
    assert statuses == {"free": "canceled", "pro_monthly": "trialing"}


def test_upgrade_during_trial_charges_nothing_and_keeps_the_trial(
    client: WebClient, synced: Flask
) -> None:
    log_in(client, trialing_customer(synced, "starter_monthly"))
    confirm = client.get("/account/plan/pro_monthly")
    assert "Your trial goes on, and $0 is charged now." in visible_text(confirm.text)
    _confirm_upgrade(client, confirm, "pro_monthly")
    text = _account(client)
    assert "You are now on the Pro plan." in text
    assert "Trial: 14 days left" in text
    assert "1,000,000 tokens left" in text
    with synced.app_context():
        assert (
            db.session.scalars(
                select(Invoice).where(Invoice.billing_reason == "subscription_update")
            ).all()
            == []
        )
