"""The buyer's journeys in a real browser: what a person clicks, sees and can look at afterwards."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, ViewportSize, expect

from app.stripe_sandbox import Sandbox
from tests.browser.harness import BROWSER_HOWTO, CHROMIUM, DESKTOP, PHONE, BrowserTrouble, Journey
from tests.journeys import DAY, GOOD_CARD
from tests.waiting import wait_until

if CHROMIUM is None:
    pytest.skip(BROWSER_HOWTO, allow_module_level=True)

EMAIL = "ada@example.com"
PASSWORD = "correct horse battery"
DECLINED_CARD = "4000 0000 0000 9995"


def plan_card(page: Page, plan_name: str) -> Locator:
    """The pricing page's card for ``plan_name``."""
    return page.get_by_role("article").filter(
        has=page.get_by_role("heading", name=plan_name, exact=True)
    )


def sign_up(page: Page, journey: Journey) -> None:
    """Fill in the sign-up form and send it."""
    expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    journey.step("sign-up")
    page.get_by_role("button", name="Create account").click()


def fill_in_card(page: Page, journey: Journey, card: str) -> None:
    """Type a card into the sandbox's hosted Checkout page and start the trial."""
    expect(page.get_by_text("Test mode")).to_be_visible()
    page.get_by_label("Card number").fill(card)
    page.get_by_label("Expiry").fill("12 / 34")
    page.get_by_label("CVC").fill("123")
    journey.step("checkout")
    page.get_by_role("button", name="Start trial").click()


def start_trial(page: Page, journey: Journey, plan_name: str) -> None:
    """A new visitor picks ``plan_name`` on the pricing page, signs up and pays with a good card."""
    page.goto("/pricing")
    plan_card(page, plan_name).get_by_role("button", name="Start trial").click()
    sign_up(page, journey)
    fill_in_card(page, journey, GOOD_CARD)
    expect(page.get_by_role("heading", name=f"You are on the {plan_name} plan")).to_be_visible()
    journey.step("success")


def end_trial(sandbox: Sandbox) -> None:
    """Move Stripe's clock past the 14-day trial; wait until its webhooks have been delivered."""
    sandbox.advance(15 * DAY)
    # The delivery thread posts them in the background; there is nothing in the browser to wait on.
    wait_until(
        lambda: not sandbox.pending_deliveries(),
        timeout=10,
        failure="the sandbox did not deliver its webhooks",
    )


def go_to_account(page: Page, journey: Journey, status: str) -> None:
    """Follow the header's Account link to a page showing the plan's ``status``."""
    page.get_by_role("link", name="Account").click()
    expect(page.locator("#plan-status")).to_have_text(status)
    journey.step("account")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_visitor_toggles_yearly_then_starts_pro_trial_and_sees_it_on_account(
    page: Page, journey: Journey, viewport: ViewportSize
) -> None:
    page.goto("/pricing")
    pro = plan_card(page, "Pro")
    expect(pro).to_contain_text("$49 / month")
    journey.step("pricing-monthly")

    # htmx swaps the cards in place: a page load would forget this mark.
    page.evaluate("window.sameDocument = true")
    page.get_by_role("button", name="Yearly").click()
    expect(pro).to_contain_text("$490 / year")
    expect(pro).to_contain_text("save 17%")
    expect(page).to_have_url(re.compile(r"/pricing\?interval=year$"))
    journey.step("pricing-yearly")
    page.get_by_role("button", name="Monthly").click()
    expect(pro).to_contain_text("$49 / month")
    assert page.evaluate("window.sameDocument") is True
    journey.step("pricing-monthly-again")

    pro.get_by_role("button", name="Start trial").click()
    expect(page.get_by_text("You picked Pro (monthly)")).to_be_visible()
    sign_up(page, journey)
    expect(page.get_by_role("heading", name="14 days free").first).to_be_visible()
    fill_in_card(page, journey, GOOD_CARD)

    expect(page.get_by_role("heading", name="You are on the Pro plan")).to_be_visible()
    expect(page.get_by_text("Your free trial runs until")).to_be_visible()
    journey.step("success")
    page.get_by_role("button", name="Go to your account").click()
    expect(page.get_by_role("heading", name="Pro", exact=True)).to_be_visible()
    expect(page.locator("#plan-status")).to_have_text("Trial: 14 days left")
    expect(page.get_by_text("1,000,000 tokens left")).to_be_visible()
    journey.step("account")


def test_declined_card_shows_its_message_and_no_plan_is_created(
    page: Page, journey: Journey, trouble: BrowserTrouble, server: str
) -> None:
    page.goto("/pricing")
    plan_card(page, "Pro").get_by_role("button", name="Start trial").click()
    sign_up(page, journey)
    expect(page.get_by_role("heading", name="14 days free").first).to_be_visible()
    # Stripe's hosted page answers a declined card with 402 Payment Required, by design.
    trouble.expect_response("POST", page.url, 402)
    fill_in_card(page, journey, DECLINED_CARD)
    expect(page.get_by_role("alert")).to_have_text("Your card has insufficient funds.")
    journey.step("declined")

    page.get_by_role("link", name="Back").click()
    expect(page.get_by_text("Checkout was cancelled and you have not been charged")).to_be_visible()
    journey.step("back-on-pricing")
    page.get_by_role("link", name="Account").click()
    expect(page.get_by_text("You have no plan yet")).to_be_visible()
    journey.step("account")


def test_upgrade_shows_amount_due_before_charging_it(
    page: Page, journey: Journey, sandbox: Sandbox
) -> None:
    start_trial(page, journey, "Starter")
    end_trial(sandbox)
    go_to_account(page, journey, "Active")

    page.get_by_role("button", name="Upgrade to Pro (monthly)").click()
    amount_due = page.locator("#amount-due")
    expect(page.get_by_text("You pay")).to_contain_text(re.compile(r"You pay \$\d+(\.\d\d)? now"))
    # The answer appears where the person looks, not scrolled away above the window.
    expect(page.get_by_text("You pay")).to_be_in_viewport()
    journey.step("upgrade-preview")
    page.get_by_role("button", name=f"Confirm upgrade and pay {amount_due.inner_text()}").click()
    expect(page.get_by_text("You are now on the Pro plan.")).to_be_visible()
    expect(page.locator("#plan-status")).to_have_text("Active")
    expect(page.get_by_text("$49 / month")).to_be_visible()
    journey.step("upgraded")


def test_downgrade_scheduled_then_undone_keeps_the_plan(
    page: Page, journey: Journey, sandbox: Sandbox
) -> None:
    start_trial(page, journey, "Pro")
    end_trial(sandbox)
    go_to_account(page, journey, "Active")

    page.get_by_role("button", name="Downgrade to Starter (monthly)").click()
    expect(page.get_by_text("You keep your current plan until")).to_be_visible()
    journey.step("downgrade-confirm")
    page.get_by_role("button", name="Schedule the change").click()
    expect(page.get_by_text("Your plan changes to Starter (monthly) on")).to_be_visible()
    journey.step("downgrade-scheduled")
    page.get_by_role("button", name="Keep my current plan").click()
    expect(page.get_by_text("You keep your current plan.")).to_be_visible()
    expect(page.get_by_text("Your plan changes to Starter (monthly) on")).to_have_count(0)
    journey.step("downgrade-undone")


def test_cancel_at_period_end_then_resume_renews_as_before(
    page: Page, journey: Journey, sandbox: Sandbox
) -> None:
    start_trial(page, journey, "Starter")
    end_trial(sandbox)
    go_to_account(page, journey, "Active")

    page.get_by_role("button", name="Cancel at period end").click()
    expect(page.get_by_text("Your plan ends on")).to_be_visible()
    expect(page.get_by_text("Your plan ends on")).to_be_in_viewport()
    journey.step("cancel-scheduled")
    page.get_by_role("button", name="Resume my plan").click()
    expect(page.get_by_text("Your plan will renew as before.")).to_be_visible()
    expect(page.locator("#plan-status")).to_have_text("Active")
    journey.step("resumed")


def test_cancel_now_after_confirming_ends_the_plan(
    page: Page, journey: Journey, sandbox: Sandbox
) -> None:
    start_trial(page, journey, "Starter")
    end_trial(sandbox)
    go_to_account(page, journey, "Active")

    page.get_by_role("button", name="Cancel now…").click()
    expect(page.get_by_text("Your plan ends immediately")).to_be_visible()
    journey.step("cancel-now-confirm")
    page.get_by_role("button", name="Yes, cancel now").click()
    expect(page.get_by_text("Your plan is cancelled.")).to_be_visible()
    expect(page.get_by_text("Your plan has ended")).to_be_visible()
    journey.step("cancelled")


def test_log_out_then_log_in_returns_to_the_account(page: Page, journey: Journey) -> None:
    start_trial(page, journey, "Starter")
    go_to_account(page, journey, "Trial: 14 days left")

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_text("You are logged out.")).to_be_visible()
    expect(page.get_by_role("link", name="Account")).to_have_count(0)
    journey.step("logged-out")
    page.get_by_role("link", name="Log in").click()
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    journey.step("log-in")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.locator("#plan-status")).to_have_text("Trial: 14 days left")
    journey.step("logged-in")


def test_pro_moves_to_enterprise_in_place_with_the_unused_time_credited(
    page: Page, journey: Journey, sandbox: Sandbox
) -> None:
    start_trial(page, journey, "Pro")
    end_trial(sandbox)
    go_to_account(page, journey, "Active")

    page.get_by_role("button", name="Upgrade to Enterprise (monthly)").click()
    # Billed in arrears: nothing now, and the next invoice credits what is left of Pro.
    expect(page.locator("#amount-due")).to_have_text("$0")
    credit = page.locator("#preview-lines tr.credit")
    expect(credit).to_contain_text("Unused time on Pro")
    expect(credit).to_contain_text("-$")
    journey.step("enterprise-preview")
    page.get_by_role("button", name="Confirm the change to Enterprise").click()
    expect(page.get_by_role("heading", name="Enterprise", exact=True)).to_be_visible()
    expect(page.locator("#plan-status")).to_have_text("Active")
    journey.step("on-enterprise")


def test_billing_address_and_tax_id_given_in_the_portal_show_on_the_account(
    page: Page, journey: Journey, sandbox: Sandbox
) -> None:
    start_trial(page, journey, "Starter")
    go_to_account(page, journey, "Trial: 14 days left")
    expect(page.locator("#billing-address")).to_have_text("None given")

    page.get_by_role("button", name="Change card or billing details").click()
    # Tollgate's configuration: details, tax IDs and invoices, but no cancelling here.
    expect(page.get_by_role("button", name="Cancel plan")).to_have_count(0)
    page.get_by_label("Line1").fill("1 rue de Rivoli")
    page.get_by_label("City").fill("Paris")
    page.get_by_label("Postal code").fill("75001")
    page.get_by_label("Country").fill("FR")
    page.get_by_role("button", name="Save").click()
    page.get_by_label("Type").select_option("eu_vat")
    page.get_by_label("Tax ID").fill("FR12345678901")
    page.get_by_role("button", name="Add tax ID").click()
    expect(page.get_by_text("FR12345678901")).to_be_visible()
    journey.step("portal")

    page.get_by_role("link", name="Return").click()
    # The webhooks arrive in the background: the page shows them once they have.
    wait_until(
        lambda: not sandbox.pending_deliveries(),
        timeout=10,
        failure="the sandbox did not deliver its webhooks",
    )
    page.reload()
    expect(page.locator("#billing-address")).to_contain_text("1 rue de Rivoli")
    expect(page.locator("#billing-address")).to_contain_text("Paris")
    expect(page.locator("#billing-tax-ids")).to_contain_text("FR12345678901")
    journey.step("account-with-details")
