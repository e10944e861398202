"""The operator's morning in a real browser: the accounts at risk, revenue with its charts drawn,
a credit grant found on the customer's own account page and in the audit log, a failed webhook
replayed."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from playwright.sync_api import Browser, Locator, Page, ViewportSize, expect

from app.stripe_sandbox import Sandbox
from tests.backoffice.conftest import OPERATOR_PASSWORD, make_operator
from tests.browser.harness import BROWSER_HOWTO, CHROMIUM, DESKTOP, PHONE, Journey
from tests.factories import PASSWORD, active_customer, past_due_customer, trialing_customer
from tests.webhooks.test_retries import KeyRevoked

if CHROMIUM is None:
    pytest.skip(BROWSER_HOWTO, allow_module_level=True)


def menu(page: Page, name: str) -> Locator:
    """A link of the back office's own menu."""
    return page.get_by_role("navigation", name="Back office").get_by_role(
        "link", name=name, exact=True
    )


@pytest.fixture
def live_app(synced: Flask, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Flask:
    """The back office with something on it: a paying customer, one whose renewal failed, and
    a new trial whose webhooks failed (Stripe refused the key while they were handled).
    Webhooks are delivered here, not by the background thread, so the failed ones stay failed
    until the operator replays them."""
    active_customer(synced, "starter_monthly", email="happy@example.com")
    past_due_customer(synced, "pro_monthly", email="late@example.com")
    sandbox.deliver_pending()
    trialing_customer(synced, "pro_monthly", email="new@example.com")
    with KeyRevoked(sandbox, monkeypatch):
        sandbox.deliver_pending()
    make_operator(synced, "ops@example.com")
    return synced


def test_operator_finds_an_account_at_risk_grants_credits_and_replays_a_failed_webhook(
    page: Page, journey: Journey, browser: Browser, server: str
) -> None:
    page.goto("/admin/")
    page.get_by_label("Email").fill("ops@example.com")
    page.get_by_label("Password").fill(OPERATOR_PASSWORD)
    page.get_by_role("button", name="Log in").click()

    # The page an operator opens first.
    expect(page.get_by_role("heading", name="Accounts at risk")).to_be_visible()
    late = page.get_by_role("row").filter(has_text="late@example.com")
    expect(late).to_contain_text("Past due")
    journey.step("at-risk")

    menu(page, "Revenue").click()
    expect(page.get_by_role("heading", name="Revenue", exact=True)).to_be_visible()
    expect(page.locator("#revenue-now")).to_contain_text("MRR")
    # The charts are drawn: bars for the months' movements and a line for MRR.
    expect(page.locator("#movements-chart rect.bar, #movements-chart rect").first).to_be_visible()
    assert page.locator("#mrr-chart polyline, #mrr-chart path").count() > 0
    journey.step("revenue")

    menu(page, "At risk").click()
    page.get_by_role("row").filter(has_text="late@example.com").get_by_role("link").first.click()
    expect(page.get_by_role("heading", name="late@example.com")).to_be_visible()
    journey.step("customer")

    grant = page.locator("#grant")
    grant.get_by_label("Pool").select_option("ai_tokens")
    grant.get_by_label("Amount").fill("25000")
    grant.get_by_label("Reason").fill("Sorry for the failed renewal")
    grant.get_by_label("I confirm this grant").check()
    grant.get_by_role("button", name="Grant credits").click()
    expect(page.get_by_text("Granted 25,000 to ai_tokens.")).to_be_visible()
    journey.step("granted")

    menu(page, "Audit log").click()
    entry = page.get_by_role("row").filter(has_text="Sorry for the failed renewal")
    expect(entry).to_contain_text("grant_credits")
    expect(entry).to_contain_text("ops@example.com")
    journey.step("audit-log")

    menu(page, "Webhooks").click()
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    failed = page.get_by_role("link", name="Replay…")
    expect(failed.first).to_be_visible()
    journey.step("failed-webhooks")
    failed.first.click()
    page.get_by_label("Reason").fill("Key rolled back")
    page.get_by_role("checkbox").check()
    page.get_by_role("button", name="Replay the event").click()
    expect(page.get_by_text(re.compile(r"Replayed evt_\w+: processed\."))).to_be_visible()
    journey.step("replayed")

    # The customer sees the grant on its own account page.
    context = browser.new_context(base_url=server, viewport=DESKTOP)
    customer = context.new_page()
    customer.goto("/login")
    customer.get_by_label("Email").fill("late@example.com")
    customer.get_by_label("Password").fill(PASSWORD)
    customer.get_by_role("button", name="Log in").click()
    expect(customer.locator("#credit-pools")).to_contain_text("25,000 tokens left")
    Journey(customer, journey.folder, journey.steps).step("customer-account")
    context.close()


@pytest.mark.parametrize("viewport", [PHONE], ids=["phone"])
def test_every_back_office_page_fits_a_phone(
    page: Page, journey: Journey, viewport: ViewportSize
) -> None:
    page.goto("/admin/")
    page.get_by_label("Email").fill("ops@example.com")
    page.get_by_label("Password").fill(OPERATOR_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Accounts at risk")).to_be_visible()
    names = page.get_by_role("navigation", name="Back office").get_by_role("link").all_inner_texts()
    assert len(names) == 10
    for name in names:
        menu(page, name).click()
        expect(page.locator("h1")).to_be_visible()
        journey.step(name.lower().replace(" & ", "-").replace(" ", "-"))
