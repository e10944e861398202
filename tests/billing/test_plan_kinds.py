"""Plan changes between kinds of plan: billed in advance or in arrears, free or paid, monthly or
yearly. The numbers are worked by hand from the catalog (Pro $49 / month in advance, Enterprise
$499 / month in arrears) and a change made halfway through a period."""

from __future__ import annotations

import re
from typing import Any

import httpx
from flask import Flask
from sqlalchemy import select

from app.accounts.mirror import Invoice, Subscription
from app.billing.gateway import gateway
from app.billing.overage_forwarding import forward_overage
from app.clock import timestamp
from app.extensions import db
from app.stripe_sandbox import Sandbox
from tests.factories import active_customer, log_in, newest_subscription, trialing_customer
from tests.journeys import advance_days, click, form_value, press
from tests.web import WebClient, visible_text

HOUR = 3600


def _stripe(app: Flask, call: Any) -> Any:
    with app.app_context():
        return call(gateway().client.v1)


def _halfway(app: Flask, sandbox: Sandbox) -> tuple[int, int]:
    """Move the clock to the middle of the current period; the period's (start, end)."""
    subscription = newest_subscription(app)
    assert subscription.current_period_start is not None
    assert subscription.current_period_end is not None
    start = int(subscription.current_period_start.timestamp())
    end = int(subscription.current_period_end.timestamp())
    with app.app_context():
        now = timestamp()
    sandbox.advance(start + (end - start) // 2 - now)
    sandbox.deliver_pending()
    return start, end


def _tokens(client: WebClient) -> int:
    match = re.search(r"([0-9,]+) tokens left", visible_text(client.get("/account").text))
    assert match, "the account shows the token pool"
    return int(match.group(1).replace(",", ""))


def _cents(text: str) -> int:
    return round(float(text.replace("$", "").replace(",", "")) * 100)


def _confirm(client: WebClient, preview: httpx.Response, plan_key: str) -> httpx.Response:
    proration_date = form_value(preview.text, "proration_date")
    return press(
        client, preview.text, f"/account/plan/{plan_key}", {"proration_date": proration_date}
    )


def test_pro_to_enterprise_halfway_credits_unused_pro_on_the_first_enterprise_invoice(
    client: WebClient, synced: Flask, sandbox: Sandbox
) -> None:
    log_in(client, active_customer(synced, "pro_monthly"))
    start, end = _halfway(synced, sandbox)
    tokens_on_pro = _tokens(client)

    confirm = client.get("/account/plan/enterprise_monthly")
    assert confirm.status_code == 200
    text = visible_text(confirm.text)
    assert "$0 is charged now" in text
    # Half of Pro's $49 is unused: Stripe's preview credits it, on the next invoice.
    credit = re.search(
        r'Unused time on Pro[^<]*</td><td class="amount">(-\$[0-9.,]+)<', confirm.text
    )
    assert credit, "the preview shows the credit for Pro's unused time"
    credit_cents = -_cents(credit.group(1)[1:])
    proration_date = int(form_value(confirm.text, "proration_date"))
    assert credit_cents == -round(4900 * (end - proration_date) / (end - start))
    assert abs(credit_cents + 2450) <= 1
    assert "and $499 for Enterprise this month" in text

    assert _confirm(client, confirm, "enterprise_monthly").status_code == 302
    account = visible_text(client.get("/account").text)
    assert "You are now on the Enterprise plan." in account
    assert "$499 / month, invoiced at the end of the period" in account
    # Enterprise grants 10,000,000 tokens a period, Pro 1,000,000: the difference holds at once.
    assert _tokens(client) == tokens_on_pro + 9_000_000
    subscription = newest_subscription(synced)
    assert (subscription.plan_key, subscription.status.value) == ("enterprise_monthly", "active")
    with synced.app_context():
        # Nothing is invoiced now: in place, on the same subscription and period.
        updates = db.session.scalars(
            select(Invoice).where(Invoice.billing_reason == "subscription_update")
        ).all()
        assert updates == []
        forward_overage()  # the Enterprise fee of this period goes to its meter

    advance_days(sandbox, (end - start) / 2 / 86400 + 2 * HOUR / 86400)
    invoices = _stripe(
        synced,
        lambda v1: (
            v1.invoices.list(params={"subscription": subscription.stripe_subscription_id}).data
        ),
    )
    first = invoices[0]
    assert first.billing_reason == "subscription_cycle"
    assert first.status == "paid"
    amounts = {line.description: line.amount for line in first.lines.data if line.amount}
    # The first in-arrears invoice: Enterprise's $499 for the period, less Pro's unused half.
    assert amounts == {
        next(d for d in amounts if d.startswith("Unused time on Pro")): credit_cents,
        "1 \u00d7 Enterprise": 49_900,
    }
    assert first.amount_paid == 49_900 + credit_cents


def test_enterprise_to_pro_waits_for_the_period_end_and_bills_the_enterprise_period(
    client: WebClient, synced: Flask, sandbox: Sandbox
) -> None:
    log_in(client, active_customer(synced, "enterprise_monthly"))
    subscription = newest_subscription(synced)
    with synced.app_context():
        forward_overage()
    confirm = visible_text(client.get("/account/plan/pro_monthly").text)
    assert "You keep your current plan until" in confirm
    assert "bills this month of Enterprise ($499 and its usage)" in confirm
    assert click(client, "/account/plan/pro_monthly").status_code == 302
    assert "Your plan changes to Pro (monthly) on" in visible_text(client.get("/account").text)
    assert newest_subscription(synced).plan_key == "enterprise_monthly"

    assert subscription.current_period_end is not None
    with synced.app_context():
        days = (int(subscription.current_period_end.timestamp()) - timestamp()) / 86400
    advance_days(sandbox, days + 2 * HOUR / 86400)
    account = visible_text(client.get("/account").text)
    assert "$49 / month" in account
    assert newest_subscription(synced).plan_key == "pro_monthly"
    invoice = _stripe(
        synced,
        lambda v1: v1.invoices.list(
            params={"subscription": subscription.stripe_subscription_id}
        ).data[0],
    )
    amounts = {line.description: line.amount for line in invoice.lines.data if line.amount}
    # Enterprise's month, in arrears, and Pro's first month, in advance, on one invoice.
    assert amounts == {"1 \u00d7 Enterprise": 49_900, "1 \u00d7 Pro": 4_900}
    assert invoice.amount_due == 54_800


def test_paid_to_free_waits_for_the_period_end(
    client: WebClient, synced: Flask, sandbox: Sandbox
) -> None:
    log_in(client, active_customer(synced, "enterprise_monthly"))
    assert click(client, "/account/plan/free").status_code == 302
    assert "Your plan changes to Free (monthly) on" in visible_text(client.get("/account").text)
    assert newest_subscription(synced).plan_key == "enterprise_monthly"
    advance_days(sandbox, 32)
    subscription = newest_subscription(synced)
    assert (subscription.plan_key, subscription.status.value) == ("free", "active")


def test_free_to_enterprise_starts_at_once_and_ends_the_free_plan(
    client: WebClient, synced: Flask, sandbox: Sandbox
) -> None:
    log_in(client, active_customer(synced, "free"))
    confirm = visible_text(client.get("/account/plan/enterprise_monthly").text)
    assert "Enterprise starts at once and is invoiced at the end of each month" in confirm
    assert click(client, "/checkout/enterprise_monthly").status_code in (302, 303)
    sandbox.deliver_pending()
    with synced.app_context():
        statuses = {s.plan_key: s.status.value for s in db.session.scalars(select(Subscription))}
    assert statuses == {"free": "canceled", "enterprise_monthly": "active"}


def test_monthly_to_yearly_and_back_for_a_plan_billed_in_advance(
    client: WebClient, synced: Flask, sandbox: Sandbox
) -> None:
    log_in(client, active_customer(synced, "pro_monthly"))
    confirm = client.get("/account/plan/pro_yearly")
    text = visible_text(confirm.text)
    # A new yearly period starts now: its $490 in full, less Pro monthly's unused time.
    assert "Unused time on Pro" in text
    assert "1 \u00d7 Pro" in text
    assert _confirm(client, confirm, "pro_yearly").status_code == 302
    assert "$490 / year" in visible_text(client.get("/account").text)
    assert click(client, "/account/plan/pro_monthly").status_code == 302
    assert "Your plan changes to Pro (monthly) on" in visible_text(client.get("/account").text)


def test_enterprise_during_a_pro_trial_is_refused_and_nothing_changes(
    client: WebClient, synced: Flask
) -> None:
    log_in(client, trialing_customer(synced, "pro_monthly"))
    response = client.get("/account/plan/enterprise_monthly")
    assert "The Enterprise plan has no trial" in visible_text(response.text)
    assert newest_subscription(synced).plan_key == "pro_monthly"


def test_unknown_plan_is_a_404_and_changes_nothing(client: WebClient, synced: Flask) -> None:
    log_in(client, active_customer(synced, "pro_monthly"))
    assert client.get("/account/plan/platinum").status_code == 404
    assert newest_subscription(synced).plan_key == "pro_monthly"
