"""Stripe failing: a share of Tollgate's Stripe calls fail as Stripe and the network fail.

The sandbox's fault mode (app/stripe_sandbox/faults.py) answers a seeded share of the SDK's calls
with a 429 (rate limit, lock timeout), a 500, a timeout or a broken connection, some of them after
the sandbox did the request. The SDK retries what it retries against Stripe; what is left reaches
the customer. Every action must then either complete (the page says so and the mirror is what
Stripe has) or say clearly that it did not and leave the mirror as it was, and the same action
tried again once Stripe is back completes, once. Overage reaches the meters exactly once.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe
from flask import Flask
from sqlalchemy import func, select

from app.billing.fetch import fetch_subscription, plan_item
from app.catalog.stripe_names import PLAN_FEE_METER
from app.clock import from_timestamp
from app.extensions import db
from app.models import CreditPool, Customer, Invoice, OverageBatch, OverageOutbox, Subscription
from app.stripe_sandbox import Sandbox, SandboxHTTPClient
from app.stripe_sandbox.faults import KINDS, Faults
from tests.factories import MadeCustomer, active_customer, log_in, trialing_customer
from tests.journeys import (
    GOOD_CARD,
    advance_days,
    form_value,
    pay_on_checkout_page,
    press,
    start_plan_as_new_buyer,
)
from tests.reliability.conftest import Figures, at_scale
from tests.web import WebClient, visible_text

REFUSED = "Our payment provider did not confirm this. Please try again in a moment."
SHARE = 0.25
SEED = 19


# The fault mode itself, against the SDK with no application around it.


@pytest.fixture
def bare(tmp_path: Path) -> tuple[Sandbox, Callable[[int], stripe.StripeClient]]:
    """A sandbox and a factory of SDK clients on it, with ``retries`` network retries."""
    sandbox = Sandbox(str(tmp_path / "sandbox.sqlite3"))

    def client(retries: int) -> stripe.StripeClient:
        return stripe.StripeClient(
            "sk_test_faults", http_client=SandboxHTTPClient(sandbox), max_network_retries=retries
        )

    return sandbox, client


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """The SDK's retries without its waits (half a second and up): the sandbox needs no time to
    recover, and the retries themselves are the SDK's. Counts the retries."""
    retries: Counter[str] = Counter()

    def sleep_time(self: SandboxHTTPClient, num_retries: int) -> float:
        retries["retries"] += 1
        return 0.0

    monkeypatch.setattr(SandboxHTTPClient, "_sleep_time_seconds", sleep_time)
    return retries


def _one(kind: str, **kwargs: Any) -> Faults:
    """Exactly one fault, of ``kind``, on the first call (that ``only`` accepts)."""
    return Faults(script=[kind], **kwargs)


@pytest.mark.parametrize(
    ("kind", "status", "error", "should_retry"),
    [
        ("rate_limit", 429, stripe.RateLimitError, None),
        ("lock_timeout", 429, stripe.RateLimitError, "true"),
        ("api_error", 500, stripe.APIError, None),
        ("timeout", None, stripe.APIConnectionError, None),
        ("dropped", None, stripe.APIConnectionError, None),
        ("lost", None, stripe.APIConnectionError, None),
    ],
)
def test_each_fault_reaches_the_sdk_as_stripe_and_the_network_send_it(
    bare: tuple[Sandbox, Callable[[int], stripe.StripeClient]],
    kind: str,
    status: int | None,
    error: type[stripe.StripeError],
    should_retry: str | None,
) -> None:
    sandbox, client = bare
    sandbox.faults = _one(kind)
    with pytest.raises(error) as raised:
        client(0).v1.customers.create({"email": "ada@example.com"})
    assert raised.value.http_status == status
    if status is not None:
        body = raised.value.json_body
        assert body is not None
        assert body["error"]["type"] == ("api_error" if status == 500 else "invalid_request_error")
        assert body["error"].get("code") == (None if status == 500 else kind)
        headers = raised.value.headers or {}
        assert headers.get("Stripe-Should-Retry") == should_retry
    else:
        assert isinstance(raised.value, stripe.APIConnectionError)
        assert raised.value.should_retry is True
    # Only a timeout or a connection lost on the way back leaves the request done.
    made = len(sandbox.store.all("customer"))
    assert made == (1 if kind in ("timeout", "lost") else 0)
    assert dict(sandbox.faults.counts) == {kind: 1}


@pytest.mark.parametrize("kind", KINDS)
def test_the_sdk_retries_what_it_retries_against_stripe(
    bare: tuple[Sandbox, Callable[[int], stripe.StripeClient]], kind: str
) -> None:
    sandbox, client = bare
    sandbox.faults = _one(kind)
    created = None
    try:
        created = client(1).v1.customers.create(
            {"email": "ada@example.com"}, {"idempotency_key": "one-customer"}
        )
    except stripe.RateLimitError:
        # A real rate limit is not retried: retrying would only add to it.
        assert kind == "rate_limit"
    else:
        assert kind != "rate_limit"
    # A retried POST carries the same Idempotency-Key: the request is done once, whatever failed.
    customers = sandbox.store.all("customer")
    assert len(customers) == (0 if kind == "rate_limit" else 1)
    if created is not None:
        assert created.id == customers[0]["id"]


def test_a_lost_answer_to_a_delete_is_retried_and_stripe_refuses_the_repeat(
    bare: tuple[Sandbox, Callable[[int], stripe.StripeClient]],
) -> None:
    """A DELETE carries no Idempotency-Key: the SDK's retry of a cancellation Stripe did but whose
    answer was lost is a second cancellation, which Stripe answers 404 (what Tollgate must
    expect of ``cancel_subscription``)."""
    sandbox, client = bare
    sdk = client(1)
    customer = sdk.v1.customers.create({"email": "ada@example.com"})
    product = sdk.v1.products.create({"name": "Pro"})
    price = sdk.v1.prices.create(
        {
            "product": product.id,
            "currency": "usd",
            "unit_amount": 0,
            "recurring": {"interval": "month"},
        }
    )
    subscription = sdk.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": price.id}]}
    )
    sandbox.faults = _one("lost", only=lambda method, path: method == "DELETE")
    with pytest.raises(stripe.InvalidRequestError) as raised:
        sdk.v1.subscriptions.cancel(subscription.id)
    assert raised.value.http_status == 404
    cancelled = sandbox.store.get(subscription.id)
    assert cancelled is not None
    assert cancelled["status"] == "canceled"


def test_faults_are_drawn_from_their_seed() -> None:
    def draws(seed: int) -> list[str | None]:
        faults = Faults(0.5, seed=seed)
        return [faults.draw("GET", "/v1/customers") for _ in range(200)]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)
    kinds = Counter(kind for kind in draws(7) if kind)
    assert set(kinds) == set(KINDS)
    assert 70 < sum(kinds.values()) < 130


def test_faults_read_from_a_setting() -> None:
    assert Faults.parse(None) is None
    assert Faults.parse("") is None
    assert Faults.parse("0") is None
    some = Faults.parse("0.2")
    assert some is not None
    assert some.share == 0.2
    only = Faults.parse("0.5:timeout, lost")
    assert only is not None
    assert {only.draw("POST", "/v1/customers") for _ in range(100)} == {None, "timeout", "lost"}
    for wrong in ("lots", "1.5", "0.2:flood"):
        with pytest.raises(ValueError, match=r"share|kinds"):
            Faults.parse(wrong)


def test_a_script_makes_exactly_the_faults_it_names() -> None:
    faults = Faults(script=[None, "lost"], only=lambda method, path: method == "DELETE")
    calls = [("GET", "/v1/subscriptions/sub_1"), ("DELETE", "/v1/subscriptions/sub_1")] * 3
    assert [faults.draw(*call) for call in calls] == [None, None, None, "lost", None, None]
    assert (faults.calls, dict(faults.counts)) == (6, {"lost": 1})


# Tollgate while Stripe fails: what customers and the operator's product do, over HTTP.


@dataclass
class Page:
    """Where an action left the browser: the status and the words on the page."""

    status: int
    text: str
    html: str = ""


@dataclass
class Tally:
    """What the actions came to."""

    completed: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    # Refused, though Stripe had done it (its answer was lost): the retry must finish it, once.
    refused_after_stripe_did_it: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    webhook_refusals: int = 0
    forward_runs: int = 0


@dataclass
class Person:
    """A customer in a browser."""

    client: WebClient
    customer_id: int


class Driver:
    """Runs actions with Stripe failing, checks what each came to, and tries a refused one again
    once Stripe is back."""

    def __init__(self, app: Flask, sandbox: Sandbox, faults: Faults) -> None:
        self.app = app
        self.sandbox = sandbox
        self.faults = faults
        self.tally = Tally()

    @contextmanager
    def failing(self) -> Iterator[None]:
        """Stripe failing for the duration."""
        self.sandbox.faults = self.faults
        try:
            yield
        finally:
            self.sandbox.faults = None

    # What the browser and the operator's product see

    def land(self, client: WebClient, response: httpx.Response, action: str) -> Page:
        """Follow a redirect within Tollgate, as a browser does; fail on a 5xx anywhere."""
        self.refuse_server_error(response, action)
        location = response.headers.get("location", "")
        if response.is_redirect and location.startswith("/"):
            response = client.get(location)
            self.refuse_server_error(response, action)
        return Page(response.status_code, visible_text(response.text), response.text)

    def refuse_server_error(self, response: httpx.Response, action: str) -> None:
        """Fail on a 5xx, but for the API's 502 ``stripe_error``, which is its clear refusal."""
        if response.status_code == 502 and _api_error_code(response) == "stripe_error":
            return
        if response.status_code >= 500:
            self.tally.server_errors.append(f"{action}: {response.status_code}")
            pytest.fail(f"{action} answered {response.status_code}: {response.text[:500]}")

    # The mirror and Stripe

    def mirror_of(self, customer_id: int) -> tuple[Any, ...]:
        """All Tollgate keeps of the customer's billing: its Stripe customer, subscriptions,
        invoices and credit balances."""
        with self.app.app_context():
            customer = db.session.get_one(Customer, customer_id)
            subscriptions = sorted(
                (
                    s.stripe_subscription_id,
                    s.status.value,
                    s.plan_key,
                    s.current_period_start,
                    s.current_period_end,
                    s.cancel_at_period_end,
                    s.scheduled_plan_key,
                    s.ended_at,
                )
                for s in db.session.scalars(
                    select(Subscription).where(Subscription.customer_id == customer_id)
                )
            )
            invoices = sorted(
                (i.stripe_invoice_id, i.status, i.amount_paid)
                for i in db.session.scalars(
                    select(Invoice).where(Invoice.customer_id == customer_id)
                )
            )
            pools = sorted(
                (p.key, p.balance)
                for p in db.session.scalars(
                    select(CreditPool).where(CreditPool.customer_id == customer_id)
                )
            )
            state = (customer.stripe_customer_id, subscriptions, invoices, pools)
            db.session.rollback()
        return state

    def stripe_customer_id(self, customer_id: int) -> str | None:
        with self.app.app_context():
            found = db.session.get_one(Customer, customer_id).stripe_customer_id
            db.session.rollback()
        return found

    def stripe_subscriptions(self, customer_id: int) -> list[dict[str, Any]]:
        """The customer's subscriptions as the sandbox holds them (read directly: no fault)."""
        stripe_customer_id = self.stripe_customer_id(customer_id)
        return [
            subscription
            for subscription in self.sandbox.store.all("subscription")
            if stripe_customer_id and subscription["customer"] == stripe_customer_id
        ]

    def stripe_state(self, customer_id: int) -> str:
        """What Stripe has of the customer: subscriptions, their schedules, invoices."""
        subscriptions = self.stripe_subscriptions(customer_id)
        schedules = [
            self.sandbox.store.get(subscription["schedule"])
            for subscription in subscriptions
            if subscription.get("schedule")
        ]
        stripe_customer_id = self.stripe_customer_id(customer_id)
        invoices = sorted(
            (invoice["id"], invoice["status"])
            for invoice in self.sandbox.store.all("invoice")
            if stripe_customer_id and invoice["customer"] == stripe_customer_id
        )
        return repr((subscriptions, schedules, invoices))

    def assert_mirror_is_stripe(self, customer_id: int, action: str) -> None:
        """The mirror has each of the customer's subscriptions, as Stripe has it now (status,
        plan, period, cancellation, scheduled change)."""
        in_stripe = sorted(s["id"] for s in self.stripe_subscriptions(customer_id))
        with self.app.app_context():
            mirrored = {
                s.stripe_subscription_id: s
                for s in db.session.scalars(
                    select(Subscription).where(Subscription.customer_id == customer_id)
                )
            }
            assert sorted(mirrored) == in_stripe, f"{action}: the subscriptions differ"
            for subscription_id in in_stripe:
                fetched = fetch_subscription(subscription_id)
                item = plan_item(fetched.subscription)
                theirs = (
                    fetched.subscription.status,
                    item.price.lookup_key,
                    from_timestamp(item.current_period_start),
                    from_timestamp(item.current_period_end),
                    fetched.subscription.cancel_at_period_end,
                    fetched.scheduled_plan_key,
                )
                mine = mirrored[subscription_id]
                ours = (
                    mine.status.value,
                    mine.plan_key,
                    mine.current_period_start,
                    mine.current_period_end,
                    mine.cancel_at_period_end,
                    mine.scheduled_plan_key,
                )
                assert ours == theirs, f"{action}: {subscription_id} is {ours} here, {theirs}"
            db.session.rollback()

    # Actions

    def act(
        self,
        person: Person,
        action: str,
        attempt: Callable[[], Page],
        done: Callable[[Page], bool],
        again: Callable[[], Page] | None = None,
    ) -> Page:
        """``attempt`` with Stripe failing. Either it is done, and the mirror is Stripe's; or the
        page says it was not, the mirror is as it was, and ``again`` (``attempt`` once more,
        unless given) with Stripe back does it."""
        mirror_before = self.mirror_of(person.customer_id)
        stripe_before = self.stripe_state(person.customer_id)
        with self.failing():
            page = attempt()
        if done(page):
            self.tally.completed[action] += 1
            self.assert_mirror_is_stripe(person.customer_id, action)
            return page
        assert REFUSED in page.text, f"{action}: neither done nor refused: {page.text[:800]}"
        self.tally.refused[action] += 1
        assert self.mirror_of(person.customer_id) == mirror_before, (
            f"{action} was refused, yet the mirror changed"
        )
        if self.stripe_state(person.customer_id) != stripe_before:
            self.tally.refused_after_stripe_did_it[action] += 1
        page = (again or attempt)()
        assert done(page), f"{action}, tried again with Stripe back: {page.text[:800]}"
        self.assert_mirror_is_stripe(person.customer_id, action)
        return page

    def deliver_webhooks(self) -> None:
        """Deliver what Stripe queued while it fails: a handler that cannot read Stripe answers
        500, and the event is delivered again later (as Stripe does)."""
        pending = len(self.sandbox.pending_deliveries())
        with self.failing():
            delivered = self.sandbox.deliver_pending()
        self.tally.webhook_refusals += pending - delivered

    def forward_overage(self) -> None:
        """`flask usage forward` while Stripe fails, again and again until nothing is left."""
        for _ in range(50):
            with self.failing():
                result = self.app.test_cli_runner().invoke(args=["usage", "forward"])
            self.tally.forward_runs += 1
            # It fails cleanly: exit 1 and what failed, for the next run to send.
            assert result.exit_code in (0, 1), result.output
            assert result.exception is None or isinstance(result.exception, SystemExit), (
                result.output
            )
            with self.app.app_context():
                unsent = db.session.scalar(
                    select(func.count(OverageBatch.id)).where(OverageBatch.forwarded_at.is_(None))
                )
                unbatched = db.session.scalar(
                    select(func.count(OverageOutbox.id)).where(OverageOutbox.batch_id.is_(None))
                )
                db.session.rollback()
            if result.exit_code == 0 and not unsent and not unbatched:
                return
        pytest.fail("flask usage forward never got everything through")


def _api_error_code(response: httpx.Response) -> str | None:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


def _says(text: str) -> Callable[[Page], bool]:
    return lambda page: text in page.text


def _customer_id(app: Flask, **where: str) -> int:
    with app.app_context():
        found = db.session.scalar(select(Customer.id).filter_by(**where))
        db.session.rollback()
    return int(found or 0)


def _browser(server: str) -> WebClient:
    return WebClient(base_url=server, follow_redirects=False, timeout=30)


# The journeys, each under faults


def plan_changes(driver: Driver, server: str, api: httpx.Client, count: int) -> None:
    """Customers past their Starter trial upgrade to Pro (preview, then confirm), schedule a
    downgrade and undo it, cancel at period end and resume; then use Pro past what it includes,
    and the overage is forwarded."""
    made = [
        trialing_customer(driver.app, "starter_monthly", email=f"c{n}@example.com")
        for n in range(count)
    ]
    advance_days(driver.sandbox, 15)  # past the trials: active and paid
    for customer in made:
        with _browser(server) as client:
            person = Person(log_in(client, customer), customer.id)
            _change_plans(driver, person)
        driver.deliver_webhooks()
    for n, customer in enumerate(made):
        _record(api, customer.reference_id, "api_calls", 100_000 + 1_000 * (n + 1), "over")
    driver.forward_overage()


def _change_plans(driver: Driver, person: Person) -> None:
    client = person.client
    # Half the customers try a refused action again from the same form (the same click), half
    # from the page loaded afresh (a new click).
    same_click = person.customer_id % 2 == 0

    def preview() -> Page:
        return driver.land(client, client.get("/account/plan/pro_monthly"), "upgrade preview")

    previewed = driver.act(
        person, "upgrade preview", preview, lambda p: 'id="amount-due"' in p.html
    )

    def confirm(html: str) -> Callable[[], Page]:
        def post() -> Page:
            data = {"proration_date": form_value(html, "proration_date")}
            return driver.land(client, press(client, html, "/account/plan/pro_monthly", data), "up")

        return post

    driver.act(
        person,
        "upgrade",
        confirm(previewed.html),
        _says("You are now on the Pro plan."),
        again=None if same_click else lambda: confirm(preview().html)(),
    )
    for action, path, data, done in (
        ("downgrade", "/account/plan/starter_monthly", {}, "Your plan changes to Starter at"),
        ("undo downgrade", "/account/plan/undo", {}, "You keep your current plan."),
        (
            "cancel at period end",
            "/account/cancel",
            {"mode": "period_end"},
            "Your plan will end with the current period.",
        ),
        ("resume", "/account/resume", {}, "Your plan will renew as before."),
    ):
        page = client.get("/account").text

        def same_form(html: str = page, path: str = path, data: dict[str, str] = data) -> Page:
            return driver.land(client, press(client, html, path, data), path)

        def fresh_page(path: str = path, data: dict[str, str] = data) -> Page:
            return same_form(client.get("/account").text, path, data)

        driver.act(person, action, same_form, _says(done), again=None if same_click else fresh_page)


def cancellations(driver: Driver, server: str, api: httpx.Client, count: int) -> None:
    """Customers in their trial cancel at once (the DELETE that carries no Idempotency-Key)."""
    for n in range(count):
        customer = trialing_customer(driver.app, "starter_monthly", email=f"c{n}@example.com")
        with _browser(server) as client:
            person = Person(log_in(client, customer), customer.id)

            def cancel_now(html: str = client.get("/account").text) -> Page:
                data = {"mode": "now", "confirm": "yes"}
                return driver.land(client, press(client, html, "/account/cancel", data), "cancel")

            driver.act(person, "cancel now", cancel_now, _says("Your plan is cancelled."))
        driver.deliver_webhooks()


def checkouts(driver: Driver, server: str, api: httpx.Client, count: int) -> None:
    """New buyers sign up for a plan, pay on Stripe's Checkout and come back to Tollgate."""
    for n in range(count):
        with _browser(server) as client:
            _buy(driver, client, f"buyer{n}@example.com", ("pro_monthly", "starter_monthly")[n % 2])
        driver.deliver_webhooks()


def _buy(driver: Driver, client: WebClient, email: str, plan_key: str) -> None:
    client.get("/signup", params={"plan": plan_key})
    form = {"email": email, "password": "correct horse battery"}
    token = client.csrf_token("/signup")
    with driver.failing():
        signed_up = client.post("/signup", data={"csrf_token": token, **form})
    driver.refuse_server_error(signed_up, "sign-up")
    assert signed_up.is_redirect, signed_up.text
    customer_id = _customer_id(driver.app, email=email)
    checkout_url = signed_up.headers["location"]
    if checkout_url.startswith("/"):
        # Starting the plan was refused: the account is made, with no plan and nothing in Stripe.
        page = driver.land(client, signed_up, "start plan")
        assert REFUSED in page.text, page.text[:800]
        driver.tally.refused["start plan"] += 1
        assert driver.mirror_of(customer_id)[1] == []
        assert driver.stripe_subscriptions(customer_id) == []
        again = client.submit("/pricing", {}, action=f"/checkout/{plan_key}")
        driver.refuse_server_error(again, "start plan again")
        checkout_url = again.headers["location"]
    else:
        driver.tally.completed["start plan"] += 1
    assert "/sandbox/checkout/" in checkout_url, checkout_url
    success_url = pay_on_checkout_page(client, checkout_url, GOOD_CARD)

    def back() -> Page:
        return driver.land(client, client.get(success_url), "checkout success")

    with driver.failing():
        page = back()
    if page.status == 200 and "You are on the" in page.text:
        driver.tally.completed["checkout success page"] += 1
    else:
        # The buyer paid; Tollgate could not read it back from Stripe yet. The page must say it
        # is confirming the payment (and look again), never that there is no such checkout
        # (which sends the buyer to pay a second time).
        assert page.status == 200, f"checkout success: {page.status} {page.text[:800]}"
        assert "Confirming your payment" in page.text, page.text[:800]
        driver.tally.refused["checkout success page"] += 1
        page = back()
        assert "You are on the" in page.text, page.text[:800]
    driver.assert_mirror_is_stripe(customer_id, "checkout")
    assert len(driver.stripe_subscriptions(customer_id)) == 1


def api_subscriptions(driver: Driver, server: str, api: httpx.Client, count: int) -> None:
    """The operator's product makes customers and subscribes them (Enterprise, Free) over the
    API, then Enterprise customers use AI tokens past their credits, and the overage is
    forwarded."""
    enterprise = []
    for n in range(count):
        reference_id, plan_key = f"api-{n}", ("enterprise_monthly", "free")[n % 2]
        _api_subscribe(driver, api, reference_id, plan_key)
        if plan_key == "enterprise_monthly":
            enterprise.append(reference_id)
        driver.deliver_webhooks()
    for n, reference_id in enumerate(enterprise):
        _record(api, reference_id, "ai_chat", 10_000_000 + 10_000 * (n + 1), "over")
    driver.forward_overage()


def _api_subscribe(driver: Driver, api: httpx.Client, reference_id: str, plan_key: str) -> None:
    body = {"customerReferenceId": reference_id}
    for action, path, payload, done in (
        ("API customer", "/customers", {**body, "email": f"{reference_id}@example.com"}, (201,)),
        ("API subscription", "/subscriptions", {**body, "planId": plan_key}, (201,)),
    ):
        customer_id = _customer_id(driver.app, reference_id=reference_id)
        before = driver.mirror_of(customer_id) if customer_id else None
        with driver.failing():
            response = api.post(path, json=payload)
        driver.refuse_server_error(response, action)
        if response.status_code in done:
            driver.tally.completed[action] += 1
        else:
            assert response.status_code == 502, response.text
            assert response.json()["error"] == {"code": "stripe_error", "message": REFUSED}
            driver.tally.refused[action] += 1
            if before is not None:
                assert driver.mirror_of(customer_id) == before, f"{action}: the mirror changed"
            # The product tries again: the same customer reference, the same plan.
            response = api.post(path, json=payload)
            # A customer the refused call recorded before Stripe failed is there now: 200.
            assert response.status_code in (*done, 200), response.text
        driver.assert_mirror_is_stripe(_customer_id(driver.app, reference_id=reference_id), action)
    in_stripe = [
        c
        for c in driver.sandbox.store.all("customer")
        if (c.get("metadata") or {}).get("tollgate_customer") == reference_id
    ]
    assert len(in_stripe) == 1, f"{reference_id} is {len(in_stripe)} customers in Stripe"


def _record(api: httpx.Client, reference_id: str, feature: str, units: int, key: str) -> None:
    """Usage past what the plan includes (recording calls no Stripe: the outbox keeps it)."""
    response = api.post(
        "/events",
        json={
            "eventIdempotencyKey": f"{reference_id}-{feature}-{key}",
            "eventName": f"{feature}.used",
            "customerReferenceId": reference_id,
            "featureKey": feature,
            "usageUnits": units,
        },
    )
    assert response.status_code == 201, response.text


def meter_units(sandbox: Sandbox) -> int:
    """What Stripe's overage meters count: each identifier once."""
    return sum(
        int(event["payload"]["value"])
        for event in sandbox.store.all("billing.meter_event")
        if event["event_name"] != PLAN_FEE_METER and not event["_duplicate"]
    )


Journey = Callable[[Driver, str, httpx.Client, int], None]
JOURNEYS: dict[str, tuple[Journey, int, int]] = {
    # name: (journey, how many customers at the short scale, at the full one)
    "plan changes": (plan_changes, 3, 40),
    "cancel now": (cancellations, 3, 60),
    "checkout": (checkouts, 4, 40),
    "API": (api_subscriptions, 4, 40),
}


@pytest.mark.parametrize(
    "journey",
    ["plan changes", "cancel now", "checkout", "API"],
)
def test_each_action_completes_or_is_refused_cleanly_while_stripe_fails(
    journey: str,
    synced: Flask,
    sandbox: Sandbox,
    server: str,
    api: httpx.Client,
    figures: Figures,
    no_backoff: Counter[str],
) -> None:
    run, short, full = JOURNEYS[journey]
    driver = Driver(synced, sandbox, Faults(SHARE, seed=SEED))
    try:
        run(driver, server, api, at_scale(short, full))
    finally:
        # What the actions came to, reported even when one of them fails the test.
        _report(figures, driver, no_backoff["retries"])

    # Stripe is back and every webhook delivered: the mirror is Stripe's, the meters the ledger's.
    for _ in range(3):
        sandbox.deliver_pending()
    assert sandbox.pending_deliveries() == []
    with synced.app_context():
        customers = db.session.execute(select(Customer.id, Customer.stripe_customer_id)).all()
        ledger_overage = int(db.session.scalar(select(func.sum(OverageOutbox.units))) or 0)
        db.session.rollback()
    charged_for_upgrades = Counter(
        invoice["customer"]
        for invoice in sandbox.store.all("invoice")
        if invoice["billing_reason"] == "subscription_update" and invoice["amount_paid"] > 0
    )
    for customer_id, stripe_customer_id in customers:
        driver.assert_mirror_is_stripe(customer_id, "in the end")
        live = [s for s in driver.stripe_subscriptions(customer_id) if s["status"] != "canceled"]
        assert len(live) <= 1, f"customer {customer_id} has {len(live)} live subscriptions"
        assert charged_for_upgrades[stripe_customer_id] <= 1, "an upgrade was charged twice"
    if journey == "plan changes":
        assert len(charged_for_upgrades) == len(customers), "an upgrade was not charged"
    metered = meter_units(sandbox)
    if driver.tally.forward_runs:
        figures.add("meter units (each identifier once)", metered)
        figures.add("ledger overage units", ledger_overage)
    assert metered == ledger_overage
    # An in-arrears plan's fee: one meter event per period, each counted once.
    with synced.app_context():
        fees_queued = sorted(
            db.session.scalars(
                select(OverageBatch.identifier).where(OverageBatch.event_name == PLAN_FEE_METER)
            )
        )
        db.session.rollback()
    fees_counted = sorted(
        event["identifier"]
        for event in sandbox.store.all("billing.meter_event")
        if event["event_name"] == PLAN_FEE_METER and not event["_duplicate"]
    )
    assert fees_counted == fees_queued


def _report(figures: Figures, driver: Driver, retries: int) -> None:
    tally, counts = driver.tally, driver.faults.counts
    figures.add("Stripe calls made while it failed (each attempt)", driver.faults.calls)
    figures.add("calls faulted, by kind", ", ".join(f"{k} {counts[k]}" for k in KINDS))
    figures.add("SDK retries", retries)
    figures.add("actions completed", sum(tally.completed.values()))
    figures.add("actions refused cleanly, then done with Stripe back", sum(tally.refused.values()))
    figures.add(
        "  of which Stripe had done (its answer lost)",
        sum(tally.refused_after_stripe_did_it.values()),
    )
    refused = ", ".join(f"{action} {n}" for action, n in tally.refused.items())
    figures.add("  refused, by action", refused or "none")
    figures.add("webhook deliveries answered 500 (delivered again)", tally.webhook_refusals)
    if tally.forward_runs:
        figures.add("flask usage forward runs", tally.forward_runs)
    figures.add("5xx seen by browsers and the API", len(tally.server_errors))


# The dangerous cases, each made by the one fault that makes it.


def _on(method: str, path_pattern: str) -> Callable[[str, str], bool]:
    """Calls of ``method`` whose path matches ``path_pattern`` whole."""
    pattern = re.compile(path_pattern)
    return lambda called, path: called == method and pattern.fullmatch(path) is not None


SUBSCRIPTION_PATH = r"/v1/subscriptions/sub_\w+"


def _paid_upgrades(sandbox: Sandbox, stripe_customer_id: str) -> int:
    return sum(
        1
        for invoice in sandbox.store.all("invoice")
        if invoice["customer"] == stripe_customer_id
        and invoice["billing_reason"] == "subscription_update"
        and invoice["amount_paid"] > 0
    )


def _stripe_plan(sandbox: Sandbox, subscription_id: str) -> str:
    subscription = sandbox.store.get(subscription_id)
    assert subscription is not None
    price = sandbox.store.get(subscription["items"]["data"][0]["price"]["id"])
    assert price is not None
    return str(price["lookup_key"])


def _mirrored(app: Flask, subscription_id: str) -> Subscription:
    with app.app_context():
        subscription = db.session.scalars(
            select(Subscription).where(Subscription.stripe_subscription_id == subscription_id)
        ).one()
        db.session.expunge(subscription)
    return subscription


def _confirm_upgrade(client: WebClient, preview_html: str) -> httpx.Response:
    data = {"proration_date": form_value(preview_html, "proration_date")}
    return press(client, preview_html, "/account/plan/pro_monthly", data)


def _landed(client: WebClient, response: httpx.Response) -> str:
    assert response.status_code < 500, response.text
    if response.is_redirect:
        response = client.get(response.headers["location"])
    return visible_text(response.text)


@pytest.mark.parametrize(
    "click_again",
    [
        "the same form",
        "the page loaded afresh",
    ],
)
def test_an_upgrade_stripe_made_whose_answer_was_lost_is_made_and_charged_once(
    click_again: str, client: WebClient, synced: Flask, sandbox: Sandbox
) -> None:
    made = active_customer(synced, "starter_monthly")
    log_in(client, made)
    preview = client.get("/account/plan/pro_monthly").text
    # Stripe upgrades and charges; the answer is lost, and the SDK's retry is rate limited.
    sandbox.faults = Faults(script=["lost", "rate_limit"], only=_on("POST", SUBSCRIPTION_PATH))
    refused = _landed(client, _confirm_upgrade(client, preview))
    sandbox.faults = None
    assert REFUSED in refused
    assert _mirrored(synced, made.stripe_subscription_id).plan_key == "starter_monthly"
    assert _stripe_plan(sandbox, made.stripe_subscription_id) == "pro_monthly"
    assert _paid_upgrades(sandbox, made.stripe_customer_id) == 1

    if click_again == "the page loaded afresh":
        preview = client.get("/account/plan/pro_monthly").text
    done = _landed(client, _confirm_upgrade(client, preview))
    assert "You are now on the Pro plan." in done
    assert _mirrored(synced, made.stripe_subscription_id).plan_key == "pro_monthly"
    assert _paid_upgrades(sandbox, made.stripe_customer_id) == 1


def test_cancel_now_stripe_made_whose_answer_was_lost_is_done(
    client: WebClient, synced: Flask, sandbox: Sandbox
) -> None:
    made = trialing_customer(synced, "starter_monthly")
    log_in(client, made)
    page = client.get("/account").text
    sandbox.faults = Faults(script=["lost"], only=_on("DELETE", SUBSCRIPTION_PATH))
    first = _landed(
        client, press(client, page, "/account/cancel", {"mode": "now", "confirm": "yes"})
    )
    sandbox.faults = None
    cancelled = sandbox.store.get(made.stripe_subscription_id)
    assert cancelled is not None
    assert cancelled["status"] == "canceled"
    if "Your plan is cancelled." not in first:
        assert REFUSED in first
        again = press(
            client,
            client.get("/account").text,
            "/account/cancel",
            {"mode": "now", "confirm": "yes"},
        )
        assert "Your plan is cancelled." in _landed(client, again)
    assert _mirrored(synced, made.stripe_subscription_id).status.value == "canceled"


def test_a_paid_checkout_that_cannot_be_read_back_says_it_is_confirming_and_bills_once(
    client: WebClient, synced: Flask, sandbox: Sandbox
) -> None:
    checkout_url = start_plan_as_new_buyer(client, "ada@example.com", "pro_monthly")
    success_url = pay_on_checkout_page(client, checkout_url, GOOD_CARD)
    # Stripe cannot be read: the session is retrieved, retried, and fails both times.
    sandbox.faults = Faults(
        script=["api_error", "api_error"], only=_on("GET", r"/v1/checkout/sessions/cs_\w+")
    )
    back = client.get(success_url)
    sandbox.faults = None
    text = visible_text(back.text)
    if "Start again" in text:
        # The buyer does what the page says, before Stripe's webhooks have come through.
        started = client.submit("/pricing", {}, action="/checkout/pro_monthly")
        if "/sandbox/checkout/" in started.headers.get("location", ""):
            client.get(pay_on_checkout_page(client, started.headers["location"], GOOD_CARD))
    sandbox.deliver_pending()
    customer_id = _customer_id(synced, email="ada@example.com")
    driver = Driver(synced, sandbox, Faults())
    live = [s for s in driver.stripe_subscriptions(customer_id) if s["status"] != "canceled"]
    assert len(live) == 1, f"the buyer has {len(live)} subscriptions"
    assert back.status_code == 200, text
    assert "Confirming your payment" in text
    assert "You are on the Pro plan" in visible_text(client.get(success_url).text)


def test_a_plan_that_replaces_the_free_one_is_done_even_if_the_free_one_cannot_end_yet(
    api: httpx.Client, free_customer: str, synced: Flask, sandbox: Sandbox
) -> None:
    customer_id = _customer_id(synced, reference_id=free_customer)
    driver = Driver(synced, sandbox, Faults())
    before = driver.mirror_of(customer_id)
    # Ending the free plan is refused by Stripe's rate limiter (not retried).
    sandbox.faults = Faults(script=["rate_limit"], only=_on("DELETE", SUBSCRIPTION_PATH))
    response = api.post(
        "/subscriptions",
        json={"customerReferenceId": free_customer, "planId": "enterprise_monthly"},
    )
    sandbox.faults = None
    assert response.status_code in (201, 502), response.text
    if response.status_code == 502:
        assert driver.mirror_of(customer_id) == before, "refused, yet the subscription was made"
    sandbox.deliver_pending()
    plans = {s.plan_key: s.status.value for s in _subscriptions(synced, customer_id)}
    assert plans == {"free": "canceled", "enterprise_monthly": "active"}


def _subscriptions(app: Flask, customer_id: int) -> list[Subscription]:
    with app.app_context():
        found = list(
            db.session.scalars(select(Subscription).where(Subscription.customer_id == customer_id))
        )
        for subscription in found:
            db.session.expunge(subscription)
    return found


def _with_downgrade_scheduled(client: WebClient, synced: Flask) -> MadeCustomer:
    """A Pro customer, logged in, who has scheduled a downgrade to Starter on the account page."""
    made = active_customer(synced, "pro_monthly")
    log_in(client, made)
    first = press(client, client.get("/account").text, "/account/plan/starter_monthly")
    assert "Your plan changes to Starter at" in _landed(client, first)
    return made


def test_a_scheduled_change_changed_again_reaches_the_mirror_even_if_its_answer_was_lost(
    client: WebClient, synced: Flask, sandbox: Sandbox
) -> None:
    made = _with_downgrade_scheduled(client, synced)
    sandbox.deliver_pending()
    # The second change: Stripe updates the schedule; reading the subscription back fails.
    sandbox.faults = Faults(script=[None, "rate_limit"], only=_on("GET", SUBSCRIPTION_PATH))
    second = _landed(
        client, press(client, client.get("/account").text, "/account/plan/starter_yearly")
    )
    sandbox.faults = None
    assert REFUSED in second
    sandbox.deliver_pending()
    driver = Driver(synced, sandbox, Faults())
    driver.assert_mirror_is_stripe(made.id, "after the webhooks")


def test_an_undo_stripe_made_whose_read_back_failed_is_done_when_tried_again(
    client: WebClient, synced: Flask, sandbox: Sandbox
) -> None:
    made = _with_downgrade_scheduled(client, synced)
    # Stripe releases the schedule; reading the subscription back afterwards fails.
    sandbox.faults = Faults(script=[None, "rate_limit"], only=_on("GET", SUBSCRIPTION_PATH))
    refused = _landed(client, press(client, client.get("/account").text, "/account/plan/undo"))
    sandbox.faults = None
    assert REFUSED in refused
    assert _mirrored(synced, made.stripe_subscription_id).scheduled_plan_key == "starter_monthly"
    again = _landed(client, press(client, client.get("/account").text, "/account/plan/undo"))
    assert "You keep your current plan." in again
    assert _mirrored(synced, made.stripe_subscription_id).scheduled_plan_key is None


def test_overage_whose_meter_event_answers_were_lost_is_counted_once(
    api: httpx.Client, enterprise_customer: str, synced: Flask, sandbox: Sandbox
) -> None:
    # The plan's fee for the period goes first, unharmed.
    fee = synced.test_cli_runner().invoke(args=["usage", "forward"])
    assert "1 sent, 0 failed." in fee.output
    _record(api, enterprise_customer, "ai_chat", 10_000_000 + 77_000, "over")
    # Stripe stores the meter event, and its answer is lost, then lost again on each of the
    # worker's three retries (replayed under the same Idempotency-Key): the run fails. The next
    # run sends the same identifier again, which Stripe does not count twice.
    sandbox.faults = Faults(script=["lost"] * 4, only=_on("POST", r"/v1/billing/meter_events"))
    failed = synced.test_cli_runner().invoke(args=["usage", "forward"])
    sandbox.faults = None
    assert failed.exit_code == 1, failed.output
    assert "0 sent, 1 failed." in failed.output
    sent = synced.test_cli_runner().invoke(args=["usage", "forward"])
    assert "1 sent, 0 failed." in sent.output
    assert meter_units(sandbox) == 77_000
