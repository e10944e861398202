"""API keys: any test secret key, the sandbox's restricted keys by their permissions, nothing
live; as Stripe answers them (401 for a key it does not know, 403 for a missing permission)."""

from __future__ import annotations

import re

import httpx
import pytest
import stripe

from app.stripe_sandbox import Sandbox, SandboxHTTPClient
from app.stripe_sandbox.api import ROUTES
from app.stripe_sandbox.keys import ACCOUNT_ID, resource_group

from .conftest import Server


def _client(sandbox: Sandbox, key: str) -> stripe.StripeClient:
    return stripe.StripeClient(api_key=key, http_client=SandboxHTTPClient(sandbox))


@pytest.mark.parametrize(
    ("key", "quoted"),
    [
        ("sk_live_51Habcd", "sk_live_***abcd"),
        ("rk_live_51Hwxyz", "rk_live_***wxyz"),
        ("pk_test_51H1234", "pk_test_***1234"),
        ("rk_test_unknown9876", "rk_test_*******9876"),
        ("not-a-key", "*****-key"),
    ],
)
def test_key_the_test_account_does_not_know_is_401(sandbox: Sandbox, key: str, quoted: str) -> None:
    with pytest.raises(stripe.AuthenticationError) as caught:
        _client(sandbox, key).v1.customers.list()
    assert caught.value.http_status == 401
    assert caught.value.user_message == f"Invalid API Key provided: {quoted}"


def test_any_test_secret_key_may_do_anything(sandbox: Sandbox) -> None:
    made = _client(sandbox, "sk_test_one").v1.customers.create()
    assert _client(sandbox, "sk_test_two").v1.customers.retrieve(made.id).id == made.id


def test_restricted_key_reads_what_it_may_read_and_writes_nothing_else(
    sandbox: Sandbox, client: stripe.StripeClient
) -> None:
    customer = client.v1.customers.create()
    key = sandbox.create_restricted_key({"customers": "read", "products": "write"})
    restricted = _client(sandbox, key)
    assert restricted.v1.customers.retrieve(customer.id).id == customer.id
    assert restricted.v1.products.list().data == []  # write includes read
    restricted.v1.products.create(params={"name": "Pro"})
    with pytest.raises(stripe.PermissionError) as caught:
        restricted.v1.customers.update(customer.id, params={"name": "Ada"})
    assert caught.value.http_status == 403
    assert caught.value.user_message == (
        f"The provided key 'rk_test_{'*' * 26}{key[-6:]}' does not have the required "
        f"permissions for this endpoint on account '{ACCOUNT_ID}'. Having the "
        "'rak_customer_write' permission would allow this request to continue."
    )
    with pytest.raises(stripe.PermissionError, match="'rak_invoice_read' permission"):
        restricted.v1.invoices.list()
    assert client.v1.customers.retrieve(customer.id).name is None


def test_restricted_key_is_known_to_every_sandbox_on_the_file(sandbox: Sandbox) -> None:
    key = sandbox.create_restricted_key({"prices": "read"})
    other = _client(Sandbox(sandbox.path), key)
    assert other.v1.prices.list().data == []
    with pytest.raises(stripe.PermissionError, match="'rak_plan_write' permission"):
        other.v1.prices.create(params={"currency": "usd", "product_data": {"name": "Pro"}})


@pytest.mark.parametrize(
    "permissions", [{"customer": "read"}, {"customers": "none"}, {"customers": "Read"}]
)
def test_restricted_key_with_unknown_group_or_level_is_not_made(
    sandbox: Sandbox, permissions: dict[str, str]
) -> None:
    with pytest.raises(ValueError, match=re.escape(next(iter(permissions)))):
        sandbox.create_restricted_key(permissions)


def test_every_route_is_in_a_resource_group() -> None:
    for route in ROUTES:
        resource_group(route.pattern)


def test_http_api_takes_the_key_as_curl_sends_it_and_refuses_live_keys(server: Server) -> None:
    base = f"{server.base_url}/sandbox/v1/customers"
    assert httpx.get(base, auth=("sk_test_any", "")).status_code == 200
    refused = httpx.get(base, auth=("sk_live_0000abcd", ""))
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "Invalid API Key provided: sk_live_****abcd"
    missing = httpx.get(base)
    assert (missing.status_code, missing.json()["error"]["message"]) == (
        401,
        "You did not provide an API key.",
    )
