"""The v1 API basics through the SDK: CRUD, lists, errors, idempotency, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest
import stripe

from app.stripe_sandbox import Sandbox, SandboxHTTPClient


def test_customer_create_update_list_delete(client: stripe.StripeClient) -> None:
    created = client.v1.customers.create(
        params={"email": "ada@example.com", "metadata": {"user_id": "7"}}
    )
    updated = client.v1.customers.update(
        created.id, params={"name": "Ada", "metadata": {"plan": "pro"}}
    )
    assert updated.name == "Ada"
    assert updated.metadata.to_dict() == {"user_id": "7", "plan": "pro"}
    assert client.v1.customers.retrieve(created.id).email == "ada@example.com"
    assert [c.id for c in client.v1.customers.list(params={"email": "ada@example.com"})] == [
        created.id
    ]
    assert client.v1.customers.delete(created.id).deleted is True
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.retrieve(created.id)


def test_price_lookup_key_is_unique_unless_transferred(client: stripe.StripeClient) -> None:
    product = client.v1.products.create(params={"name": "Pro"})
    base = {"currency": "usd", "product": product.id, "recurring": {"interval": "month"}}
    old = client.v1.prices.create(params={**base, "unit_amount": 1000, "lookup_key": "pro"})
    with pytest.raises(stripe.InvalidRequestError, match="already uses that lookup key"):
        client.v1.prices.create(params={**base, "unit_amount": 1200, "lookup_key": "pro"})
    new = client.v1.prices.create(
        params={**base, "unit_amount": 1200, "lookup_key": "pro", "transfer_lookup_key": True}
    )
    found = client.v1.prices.list(params={"lookup_keys": ["pro"], "active": True}).data
    assert [p.id for p in found] == [new.id]
    assert client.v1.prices.retrieve(old.id).lookup_key is None
    assert new.recurring.interval == "month"
    assert new.unit_amount == 1200


def test_auto_paging_iter_walks_every_customer_newest_first(client: stripe.StripeClient) -> None:
    ids = [client.v1.customers.create(params={"name": f"c{i}"}).id for i in range(25)]
    page = client.v1.customers.list(params={"limit": 10})
    assert page.has_more is True
    assert len(page.data) == 10
    assert [c.id for c in page.auto_paging_iter()] == ids[::-1]


def test_unknown_parameter_is_refused_with_stripe_error(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.create(params={"emial": "typo@example.com"})  # type: ignore[typeddict-unknown-key]
    assert caught.value.code == "parameter_unknown"
    assert caught.value.param == "emial"
    assert client.v1.customers.list().data == []


def test_unknown_nested_parameter_names_the_full_path(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.prices.create(
            params={
                "currency": "usd",
                "unit_amount": 1,
                "product_data": {"name": "x", "colour": "red"},
            }
        )  # type: ignore[typeddict-unknown-key]
    assert caught.value.param == "product_data[colour]"


def test_missing_required_parameter(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.prices.create(params={"unit_amount": 100})  # type: ignore[typeddict-item]
    assert (caught.value.code, caught.value.param) == ("parameter_missing", "currency")


def test_unknown_id_is_404_resource_missing(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.subscriptions.retrieve("sub_missing")
    assert caught.value.http_status == 404
    assert (caught.value.code, caught.value.param) == ("resource_missing", "id")


def test_idempotency_key_replays_the_first_response(client: stripe.StripeClient) -> None:
    options: stripe.RequestOptions = {"idempotency_key": "signup-7"}
    first = client.v1.customers.create(params={"email": "a@example.com"}, options=options)
    again = client.v1.customers.create(params={"email": "a@example.com"}, options=options)
    assert again.id == first.id
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert len(client.v1.customers.list().data) == 1


def test_idempotency_key_with_other_params_is_an_error(client: stripe.StripeClient) -> None:
    client.v1.customers.create(params={"email": "a@example.com"}, options={"idempotency_key": "k1"})
    with pytest.raises(stripe.IdempotencyError):
        client.v1.customers.create(
            params={"email": "b@example.com"}, options={"idempotency_key": "k1"}
        )


def test_state_survives_a_new_sandbox_on_the_same_file(tmp_path: Path) -> None:
    path = str(tmp_path / "sandbox.sqlite3")
    first = stripe.StripeClient(api_key="sk_test_x", http_client=SandboxHTTPClient(Sandbox(path)))
    customer = first.v1.customers.create(params={"email": "kept@example.com"})
    Sandbox(path).advance(86400)
    reopened = Sandbox(path)
    second = stripe.StripeClient(api_key="sk_test_x", http_client=SandboxHTTPClient(reopened))
    assert second.v1.customers.retrieve(customer.id).email == "kept@example.com"
    assert reopened.now() >= customer.created + 86400


def test_api_is_served_over_http_under_sandbox(server, sandbox: Sandbox) -> None:
    http = stripe.StripeClient(
        api_key="sk_test_x",
        base_addresses={"api": f"{server.base_url}/sandbox"},
        http_client=stripe.UrllibClient(),
    )
    created = http.v1.customers.create(params={"email": "http@example.com"})
    assert http.v1.customers.retrieve(created.id).email == "http@example.com"
