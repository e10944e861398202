"""The buyer journey: pricing, sign-up, Stripe Checkout, the success page, provisioning."""

from __future__ import annotations

from sqlalchemy import select

from app.accounts.mirror import Subscription
from app.entitlements.models import CreditPool
from app.extensions import db
from app.stripe_sandbox import Sandbox
from tests.journeys import pay_on_checkout_page, start_plan_as_new_buyer
from tests.web import WebClient, visible_text


def test_trial_checkout_with_good_card_shows_plan_before_and_after_webhooks(
    client: WebClient, synced, sandbox: Sandbox
) -> None:
    checkout_url = start_plan_as_new_buyer(client, "ada@example.com", "pro_monthly")
    assert checkout_url.startswith(f"{client.base_url}/sandbox/checkout/cs_")

    page = client.get(checkout_url)
    assert "Pro" in visible_text(page.text)
    assert "14 days free" in visible_text(page.text)

    success_url = pay_on_checkout_page(client, checkout_url, "4242 4242 4242 4242")
    assert success_url.startswith(f"{client.base_url}/checkout/success?session_id=cs_")

    # No webhook has been delivered yet: the success page reads the session from Stripe itself.
    assert sandbox.pending_deliveries()
    success = visible_text(client.get(success_url).text)
    assert "You are on the Pro plan" in success
    assert "Your free trial runs until" in success

    account = visible_text(client.get("/account").text)
    assert "Pro" in account
    assert "Trial: 14 days left" in account
    assert "1,000,000 tokens left" in account

    assert sandbox.deliver_pending() > 0
    assert "Trial: 14 days left" in visible_text(client.get("/account").text)
    with synced.app_context():
        subscription = db.session.scalars(select(Subscription)).one()
        assert subscription.plan_key == "pro_monthly"
        assert subscription.status.value == "trialing"
        pool = db.session.scalars(select(CreditPool)).one()
        assert pool.balance == 1_000_000


def test_declined_card_shows_message_and_creates_no_subscription(
    client: WebClient, synced, sandbox: Sandbox
) -> None:
    checkout_url = start_plan_as_new_buyer(client, "ada@example.com", "pro_monthly")
    response = client.post(
        checkout_url,
        data={"card_number": "4000 0000 0000 9995", "expiry": "12 / 34", "cvc": "123"},
    )
    assert response.status_code == 402
    assert "Your card has insufficient funds." in visible_text(response.text)
    sandbox.deliver_pending()
    account = visible_text(client.get("/account").text)
    assert "You have no plan yet" in account
    with synced.app_context():
        assert db.session.scalars(select(Subscription)).all() == []


def test_free_plan_skips_checkout_and_is_active_at_once(client: WebClient, synced) -> None:
    next_url = start_plan_as_new_buyer(client, "ada@example.com", "free")
    assert next_url == "/account"
    account = visible_text(client.get("/account").text)
    assert "You are now on the Free plan." in account
    assert "Active" in account


def test_in_arrears_plan_is_subscribed_directly_and_active_at_once(
    client: WebClient, synced, sandbox: Sandbox
) -> None:
    next_url = start_plan_as_new_buyer(client, "ada@example.com", "enterprise_monthly")
    assert next_url == "/account"
    account = visible_text(client.get("/account").text)
    assert "Enterprise" in account
    assert "Active" in account
    assert "10,000,000 tokens left" in account


def test_start_trial_again_with_live_subscription_goes_to_account(
    client: WebClient, synced, sandbox: Sandbox
) -> None:
    checkout_url = start_plan_as_new_buyer(client, "ada@example.com", "pro_monthly")
    client.get(pay_on_checkout_page(client, checkout_url, "4242 4242 4242 4242"))
    response = client.submit("/pricing", {}, action="/checkout/starter_monthly")
    assert response.status_code == 302
    assert response.headers["location"] == "/account"
    assert "You already have a subscription" in visible_text(client.get("/account").text)
    sandbox.deliver_pending()
    with synced.app_context():
        assert len(db.session.scalars(select(Subscription)).all()) == 1


def test_cancel_on_checkout_returns_to_pricing_with_explanation(client: WebClient, synced) -> None:
    checkout_url = start_plan_as_new_buyer(client, "ada@example.com", "pro_yearly")
    page = client.get(checkout_url)
    assert "/checkout/cancel?plan=pro_yearly" in page.text
    back = client.get("/checkout/cancel", params={"plan": "pro_yearly"})
    assert back.headers["location"] == "/pricing?interval=year"
    assert "Checkout was cancelled and you have not been charged" in visible_text(
        client.get(back.headers["location"]).text
    )


def test_success_page_polled_by_htmx_moves_on_to_account_once_active(
    client: WebClient, synced
) -> None:
    checkout_url = start_plan_as_new_buyer(client, "ada@example.com", "pro_monthly")
    success_url = pay_on_checkout_page(client, checkout_url, "4242 4242 4242 4242")
    poll = client.get(success_url, headers={"HX-Request": "true"})
    assert poll.status_code == 204
    assert poll.headers["HX-Redirect"] == "/account"


def test_success_page_for_an_unpaid_checkout_says_nothing_was_taken(
    client: WebClient, synced
) -> None:
    checkout_url = start_plan_as_new_buyer(client, "ada@example.com", "pro_monthly")
    session_id = checkout_url.rsplit("/", 1)[1]
    page = client.get("/checkout/success", params={"session_id": session_id})
    assert page.status_code == 200
    assert "Your checkout is not finished" in visible_text(page.text)
    assert "No payment was taken" in visible_text(page.text)


def test_success_page_with_a_bad_session_id_is_a_clear_error(client: WebClient, synced) -> None:
    client.sign_up("ada@example.com")
    assert client.get("/checkout/success").status_code == 400
    missing = client.get("/checkout/success", params={"session_id": "cs_test_nope"})
    assert missing.status_code == 404
    assert "We could not find that checkout" in visible_text(missing.text)


def test_failed_renewal_shows_past_due_banner_with_link_to_pay(
    client: WebClient, synced, sandbox: Sandbox
) -> None:
    checkout_url = start_plan_as_new_buyer(client, "ada@example.com", "pro_monthly")
    client.get(pay_on_checkout_page(client, checkout_url, "4000 0000 0000 0341"))
    sandbox.advance(15 * 86_400)
    sandbox.deliver_pending()
    page = client.get("/pricing")
    banner = visible_text(page.text)
    assert "Your last payment failed." in banner
    assert "pay the open invoice" in banner
    assert "/sandbox/invoices/in_" in page.text
    assert "Past due: your last payment failed" in visible_text(client.get("/account").text)
