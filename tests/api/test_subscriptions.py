"""Plans, customers and subscriptions through the JSON API."""

from __future__ import annotations

import httpx
import pytest

from app.stripe_sandbox import Sandbox
from tests.journeys import DAY, GOOD_CARD, pay_on_checkout_page
from tests.web import WebClient


def _customer(api: httpx.Client, reference: str = "cust-1") -> dict:
    response = api.post(
        "/customers",
        json={"customerReferenceId": reference, "email": "ada@example.com", "firstName": "Ada"},
    )
    assert response.status_code in (200, 201), response.text
    return response.json()["data"]


def _subscribe(api: httpx.Client, plan: str, reference: str = "cust-1") -> httpx.Response:
    return api.post("/subscriptions", json={"customerReferenceId": reference, "planId": plan})


def test_plans_lists_the_catalog(api: httpx.Client) -> None:
    plans = api.get("/plans").json()["data"]
    keys = [entry["plan"]["key"] for entry in plans]
    assert "pro_monthly" in keys
    pro = next(entry["plan"] for entry in plans if entry["plan"]["id"] == "pro_monthly")
    assert pro["price"] == {"amount": 4900, "currency": "usd"}
    assert pro["trialDays"] == 14
    assert {
        "key": "sso",
        "name": "Single sign-on (SSO)",
        "type": "boolean",
        "enabled": True,
    } in pro["features"]


def test_create_customer_is_safe_to_repeat(api: httpx.Client) -> None:
    first = api.post(
        "/customers", json={"customerReferenceId": "cust-1", "email": "ada@example.com"}
    )
    assert first.status_code == 201
    again = api.post(
        "/customers", json={"customerReferenceId": "cust-1", "email": "ada@example.com"}
    )
    assert again.status_code == 200
    assert again.json()["data"] == first.json()["data"]
    fetched = api.get("/customers/cust-1").json()["data"]
    assert fetched["email"] == "ada@example.com"
    assert fetched["subscriptions"] == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"email": "ada@example.com"}, "invalid_request"),
        ({"customerReferenceId": "c", "email": "not-an-email"}, "invalid_request"),
        ({"customerReferenceId": 42, "email": "ada@example.com"}, "invalid_request"),
        ({"customerReferenceId": "c", "email": "a@example.com", "admin": True}, "invalid_request"),
    ],
)
def test_create_customer_with_bad_body_is_400(api: httpx.Client, body: dict, code: str) -> None:
    response = api.post("/customers", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert api.get("/customers/c").status_code == 404


def test_malformed_and_non_json_bodies_get_clear_errors(api: httpx.Client) -> None:
    broken = api.post(
        "/customers", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400
    assert broken.json()["error"]["code"] == "invalid_json"
    form = api.post("/customers", data={"customerReferenceId": "c"})
    assert form.status_code == 415


def test_unknown_customer_and_plan_are_404(api: httpx.Client) -> None:
    assert api.get("/customers/nobody").json()["error"]["code"] == "customer_not_found"
    _customer(api)
    response = _subscribe(api, "platinum")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "plan_not_found"


def test_free_plan_is_active_at_once(api: httpx.Client) -> None:
    _customer(api)
    response = _subscribe(api, "free")
    assert response.status_code == 201
    subscription = response.json()["data"]["subscription"]
    assert subscription["planId"] == "free"
    assert subscription["status"] == "active"
    assert (
        api.get("/customers/cust-1").json()["data"]["subscriptions"][0]["id"] == subscription["id"]
    )


def test_paid_plan_answers_checkout_url_and_creates_nothing_until_paid(
    api: httpx.Client, server: str, sandbox: Sandbox
) -> None:
    _customer(api)
    response = _subscribe(api, "pro_monthly")
    assert response.status_code == 200
    checkout_url = response.json()["data"]["checkoutUrl"]
    assert checkout_url.startswith(f"{server}/sandbox/checkout/cs_")
    assert api.get("/customers/cust-1").json()["data"]["subscriptions"] == []
    with WebClient(base_url=server) as buyer:
        done = pay_on_checkout_page(buyer, checkout_url, GOOD_CARD)
        assert "/checkout/done?session_id=cs_" in done
        assert "you are all set" in buyer.get(done).text
    subscriptions = api.get("/customers/cust-1").json()["data"]["subscriptions"]
    assert [(s["planId"], s["status"]) for s in subscriptions] == [("pro_monthly", "trialing")]
    assert _subscribe(api, "starter_monthly").json()["error"]["code"] == "already_subscribed"


def _active_pro(api: httpx.Client, server: str, sandbox: Sandbox) -> str:
    _customer(api)
    checkout_url = _subscribe(api, "pro_monthly").json()["data"]["checkoutUrl"]
    with WebClient(base_url=server) as buyer:
        buyer.get(pay_on_checkout_page(buyer, checkout_url, GOOD_CARD))
    sandbox.advance(15 * DAY)
    sandbox.deliver_pending()
    return api.get("/customers/cust-1").json()["data"]["subscriptions"][0]["id"]


def test_plan_change_upgrade_now_and_downgrade_later(
    api: httpx.Client, server: str, sandbox: Sandbox
) -> None:
    subscription_id = _active_pro(api, server, sandbox)
    wrong = api.post(
        f"/subscriptions/{subscription_id}/plan-change",
        json={"changeToPlanId": "starter_monthly", "changeType": "UPGRADE"},
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == "change_type_mismatch"

    down = api.post(
        f"/subscriptions/{subscription_id}/plan-change",
        json={"changeToPlanId": "starter_monthly", "changeType": "DOWNGRADE"},
    )
    assert down.status_code == 200
    data = down.json()["data"]
    assert data["planId"] == "pro_monthly"
    assert data["scheduledChange"]["planId"] == "starter_monthly"

    up = api.post(
        f"/subscriptions/{subscription_id}/plan-change",
        json={"changeToPlanId": "pro_yearly", "changeType": "UPGRADE"},
    )
    assert up.status_code == 200
    assert up.json()["data"]["planId"] == "pro_yearly"
    assert up.json()["data"]["scheduledChange"] is None


def test_cancellation_in_both_modes_and_undo(
    api: httpx.Client, server: str, sandbox: Sandbox
) -> None:
    subscription_id = _active_pro(api, server, sandbox)
    bad = api.post(f"/subscriptions/cancellation/{subscription_id}?cancelMode=SOMETIME")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_cancel_mode"

    at_end = api.post(f"/subscriptions/cancellation/{subscription_id}?cancelMode=END_OF_PERIOD")
    assert at_end.json()["data"]["cancelAtPeriodEnd"] is True
    undone = api.delete(f"/subscriptions/cancellation/{subscription_id}/scheduled")
    assert undone.json()["data"]["cancelAtPeriodEnd"] is False
    nothing = api.delete(f"/subscriptions/cancellation/{subscription_id}/scheduled")
    assert nothing.status_code == 409
    assert nothing.json()["error"]["code"] == "not_cancelling"

    # Cancel, undo and cancel again within a second: three calls, three changes (the mirror is
    # read back from Stripe after each, so it says what Stripe did).
    again = api.post(f"/subscriptions/cancellation/{subscription_id}?cancelMode=END_OF_PERIOD")
    assert again.json()["data"]["cancelAtPeriodEnd"] is True
    undone = api.delete(f"/subscriptions/cancellation/{subscription_id}/scheduled")
    assert undone.json()["data"]["cancelAtPeriodEnd"] is False

    now = api.post(f"/subscriptions/cancellation/{subscription_id}?cancelMode=IMMEDIATE")
    assert now.json()["data"]["status"] == "canceled"
    assert (
        api.post(f"/subscriptions/cancellation/{subscription_id}?cancelMode=IMMEDIATE").status_code
        == 409
    )
    assert api.post("/subscriptions/cancellation/sub_nope?cancelMode=IMMEDIATE").status_code == 404


def _plan_change(api: httpx.Client, subscription_id: str, plan: str, kind: str) -> httpx.Response:
    return api.post(
        f"/subscriptions/{subscription_id}/plan-change",
        json={"changeToPlanId": plan, "changeType": kind},
    )


def test_plan_change_between_in_advance_and_in_arrears_in_place(
    api: httpx.Client, server: str, sandbox: Sandbox
) -> None:
    subscription_id = _active_pro(api, server, sandbox)
    up = _plan_change(api, subscription_id, "enterprise_monthly", "UPGRADE")
    assert up.status_code == 200, up.text
    # The same subscription, changed in place: no gap in access.
    assert (up.json()["data"]["id"], up.json()["data"]["planId"]) == (
        subscription_id,
        "enterprise_monthly",
    )
    assert _plan_change(api, subscription_id, "pro_monthly", "UPGRADE").status_code == 400
    down = _plan_change(api, subscription_id, "pro_monthly", "DOWNGRADE")
    assert down.status_code == 200, down.text
    data = down.json()["data"]
    assert (data["planId"], data["scheduledChange"]["planId"]) == (
        "enterprise_monthly",
        "pro_monthly",
    )


def test_plan_change_from_free(api: httpx.Client) -> None:
    _customer(api)
    free_id = _subscribe(api, "free").json()["data"]["subscription"]["id"]
    paid = _plan_change(api, free_id, "pro_monthly", "UPGRADE")
    assert paid.status_code == 409
    assert paid.json()["error"]["code"] == "use_checkout"
    assert "POST /subscriptions" in paid.json()["error"]["message"]
    arrears = _plan_change(api, free_id, "enterprise_monthly", "UPGRADE")
    assert arrears.status_code == 200, arrears.text
    assert arrears.json()["data"]["planId"] == "enterprise_monthly"
    subscriptions = api.get("/customers/cust-1").json()["data"]["subscriptions"]
    assert sorted((s["planId"], s["status"]) for s in subscriptions) == [
        ("enterprise_monthly", "active"),
        ("free", "canceled"),
    ]
    ended = _plan_change(api, free_id, "enterprise_monthly", "UPGRADE")
    assert (ended.status_code, ended.json()["error"]["code"]) == (409, "subscription_ended")


@pytest.mark.parametrize(
    ("plan", "kind", "status", "code"),
    [
        ("platinum", "UPGRADE", 404, "plan_not_found"),
        ("pro_monthly", "UPGRADE", 409, "same_plan"),
        ("enterprise_monthly", "SIDEWAYS", 400, "invalid_request"),
    ],
)
def test_plan_change_bad_input_changes_nothing(
    api: httpx.Client, server: str, sandbox: Sandbox, plan: str, kind: str, status: int, code: str
) -> None:
    subscription_id = _active_pro(api, server, sandbox)
    response = _plan_change(api, subscription_id, plan, kind)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    subscription = api.get("/customers/cust-1").json()["data"]["subscriptions"][0]
    assert (subscription["planId"], subscription["scheduledChange"]) == ("pro_monthly", None)
