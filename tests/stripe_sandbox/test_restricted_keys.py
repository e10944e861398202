"""Restricted keys over HTTP: the 403 Stripe sends a key without the permission, for each call
Tollgate makes, what read and write allow, and `flask sandbox restricted-key`."""

from __future__ import annotations

import httpx
import pytest
import stripe
from flask import Flask
from stripe._error_object import ErrorObject

from app.stripe_sandbox import Sandbox, SandboxHTTPClient, create_blueprint
from app.stripe_sandbox.keys import ACCOUNT_ID

from .conftest import Server

# Each kind of call Tollgate makes (app/billing/gateway.py) and the permission Stripe names when
# a restricted key lacks it (docs.stripe.com/keys/permissions-reference): GET reads, POST and
# DELETE write. Stripe checks the key before it looks the object up, so made-up ids do.
CALLS = [
    ("POST", "/v1/customers", "rak_customer_write"),
    ("GET", "/v1/customers/cus_missing", "rak_customer_read"),
    ("GET", "/v1/products/prod_missing", "rak_product_read"),
    ("POST", "/v1/products", "rak_product_write"),
    ("GET", "/v1/prices", "rak_plan_read"),
    ("POST", "/v1/prices/price_missing", "rak_plan_write"),
    ("GET", "/v1/billing/meters", "rak_billing_meter_read"),
    ("GET", "/v1/billing/meters/mtr_missing/event_summaries", "rak_billing_meter_read"),
    ("POST", "/v1/billing/meters", "rak_billing_meter_write"),
    ("POST", "/v1/billing/meter_events", "rak_billing_meter_event_write"),
    ("POST", "/v1/checkout/sessions", "rak_checkout_session_write"),
    ("GET", "/v1/checkout/sessions/cs_missing", "rak_checkout_session_read"),
    ("POST", "/v1/subscriptions", "rak_subscription_write"),
    ("GET", "/v1/subscriptions/sub_missing", "rak_subscription_read"),
    ("POST", "/v1/subscriptions/sub_missing", "rak_subscription_write"),
    ("DELETE", "/v1/subscriptions/sub_missing", "rak_subscription_write"),
    ("POST", "/v1/invoices/create_preview", "rak_invoice_write"),
    ("GET", "/v1/invoices/in_missing", "rak_invoice_read"),
    ("POST", "/v1/subscription_schedules", "rak_subscription_schedule_write"),
    (
        "POST",
        "/v1/subscription_schedules/sub_sched_missing/release",
        "rak_subscription_schedule_write",
    ),
    ("POST", "/v1/billing_portal/sessions", "rak_billing_portal_session_write"),
    ("GET", "/v1/charges/ch_missing", "rak_charge_read"),
    ("GET", "/v1/refunds/re_missing", "rak_refund_read"),
    ("GET", "/v1/disputes/dp_missing", "rak_dispute_read"),
    ("GET", "/v1/events", "rak_event_read"),
    ("GET", "/v1/webhook_endpoints", "rak_webhook_read"),
    ("POST", "/v1/webhook_endpoints", "rak_webhook_write"),
    ("DELETE", "/v1/webhook_endpoints/we_missing", "rak_webhook_write"),
]


def _client(sandbox: Sandbox, key: str) -> stripe.StripeClient:
    return stripe.StripeClient(api_key=key, http_client=SandboxHTTPClient(sandbox))


def _stripe_message(key: str, permission: str) -> str:
    """Stripe's wording, as its 403s quote it (the key masked but for its last six)."""
    masked = "rk_test_" + "*" * (len(key) - len("rk_test_") - 6) + key[-6:]
    return (
        f"The provided key '{masked}' does not have the required permissions for this "
        f"endpoint on account '{ACCOUNT_ID}'. Having the '{permission}' permission would "
        "allow this request to continue."
    )


@pytest.mark.parametrize(("method", "path", "permission"), CALLS)
def test_call_with_a_key_lacking_its_permission_is_stripes_403_naming_it(
    sandbox: Sandbox, server: Server, method: str, path: str, permission: str
) -> None:
    key = sandbox.create_restricted_key({})
    answer = httpx.request(
        method,
        f"{server.base_url}/sandbox{path}",
        headers={"Authorization": f"Bearer {key}"},
        data={"name": "Pro"} if method == "POST" else None,
    )
    assert answer.status_code == 403
    assert answer.headers["Request-Id"].startswith("req_")
    assert answer.json() == {
        "error": {"type": "invalid_request_error", "message": _stripe_message(key, permission)}
    }
    # Every field is one of Stripe's error object (the SDK's ErrorObject).
    assert set(answer.json()["error"]) <= set(ErrorObject.__annotations__)


def test_refused_write_changes_nothing_and_its_idempotency_key_stays_free(
    sandbox: Sandbox, server: Server, client: stripe.StripeClient
) -> None:
    read_only = sandbox.create_restricted_key({"customers": "read"})
    headers = {"Authorization": f"Bearer {read_only}", "Idempotency-Key": "make-ada"}
    refused = httpx.post(f"{server.base_url}/sandbox/v1/customers", headers=headers)
    assert refused.status_code == 403
    assert client.v1.customers.list().data == []
    # Stripe keeps no outcome for a request it refused before running it: granted the
    # permission, the same intent goes through.
    writer = sandbox.create_restricted_key({"customers": "write"})
    made = httpx.post(
        f"{server.base_url}/sandbox/v1/customers",
        headers={**headers, "Authorization": f"Bearer {writer}"},
    )
    assert made.status_code == 200
    assert [customer.id for customer in client.v1.customers.list().data] == [made.json()["id"]]


def test_read_allows_reads_only_and_write_allows_both_through_the_sdk(
    sandbox: Sandbox, client: stripe.StripeClient
) -> None:
    customer = client.v1.customers.create()
    reader = _client(sandbox, sandbox.create_restricted_key({"subscriptions": "read"}))
    writer = _client(sandbox, sandbox.create_restricted_key({"subscriptions": "write"}))
    for restricted in (reader, writer):
        assert restricted.v1.subscriptions.list().data == []
    # The SDK raises PermissionError for a 403, with Stripe's error object parsed.
    with pytest.raises(stripe.PermissionError) as caught:
        reader.v1.subscriptions.create(params={"customer": customer.id})
    assert (caught.value.http_status, caught.value.error.type) == (403, "invalid_request_error")
    assert "'rak_subscription_write' permission" in str(caught.value.user_message)
    with pytest.raises(stripe.InvalidRequestError, match="Missing required param: items"):
        writer.v1.subscriptions.create(params={"customer": customer.id})
    # Subscriptions are all such a key may touch: customers stay closed to it.
    with pytest.raises(stripe.PermissionError, match="'rak_customer_read' permission"):
        writer.v1.customers.retrieve(customer.id)


@pytest.fixture
def sandbox_app(sandbox: Sandbox) -> Flask:
    app = Flask(__name__)
    app.extensions["stripe_sandbox"] = sandbox
    app.register_blueprint(create_blueprint(sandbox))
    return app


def test_restricted_key_command_makes_a_key_with_the_levels_given(
    sandbox_app: Flask, sandbox: Sandbox
) -> None:
    made = sandbox_app.test_cli_runner().invoke(
        args=["sandbox", "restricted-key", "customers=write", "invoices=read", "charges=none"]
    )
    assert made.exit_code == 0, made.output
    key = made.output.strip()
    assert key.startswith("rk_test_")
    restricted = _client(sandbox, key)
    restricted.v1.customers.create()
    assert restricted.v1.invoices.list().data == []
    with pytest.raises(stripe.PermissionError, match="'rak_invoice_write' permission"):
        restricted.v1.invoices.create_preview(params={"customer": "cus_x"})
    with pytest.raises(stripe.PermissionError, match="'rak_charge_read' permission"):
        restricted.v1.charges.list()


@pytest.mark.parametrize(
    ("argument", "said"),
    [
        ("customers=admin", "'customers=admin': give GROUP=read, GROUP=write or GROUP=none"),
        ("customers", "'customers': give GROUP=read, GROUP=write or GROUP=none"),
        ("customer=read", "no resource group 'customer'; there are ['billing.meter_events'"),
    ],
)
def test_restricted_key_command_refuses_an_unknown_group_or_level(
    sandbox_app: Flask, argument: str, said: str
) -> None:
    refused = sandbox_app.test_cli_runner().invoke(args=["sandbox", "restricted-key", argument])
    assert refused.exit_code == 2
    assert said in " ".join(refused.output.split())
