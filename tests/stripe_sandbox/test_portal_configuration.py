"""Billing-portal configurations, the sessions that name them, and the portal page honouring
them: Stripe's shapes and defaults, Stripe's refusals, and the events a customer's changes emit.
(The objects' fields against Stripe's published sample: test_shapes.py.)"""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from .conftest import Catalog, Server, subscribe

TOLLGATE_LIKE: dict[str, Any] = {
    "customer_update": {"enabled": True, "allowed_updates": ["address", "name", "tax_id"]},
    "invoice_history": {"enabled": True},
    "payment_method_update": {"enabled": True},
    "subscription_cancel": {"enabled": False},
    "subscription_update": {"enabled": False},
}


def _configuration(
    client: stripe.StripeClient, **features: Any
) -> stripe.billing_portal.Configuration:
    return client.v1.billing_portal.configurations.create(
        params={"features": features or TOLLGATE_LIKE}  # type: ignore[typeddict-item]
    )


def _events(client: stripe.StripeClient, event_type: str) -> list[stripe.Event]:
    return list(client.v1.events.list(params={"type": event_type}).data)


def test_a_new_configuration_has_stripes_defaults_and_emits_created(
    client: stripe.StripeClient,
) -> None:
    made = _configuration(client, invoice_history={"enabled": True}).to_dict()
    assert made["object"] == "billing_portal.configuration"
    assert made["id"].startswith("bpc_")
    assert (made["active"], made["is_default"], made["livemode"]) == (True, False, False)
    assert made["features"]["customer_update"] == {"allowed_updates": [], "enabled": False}
    assert made["features"]["subscription_cancel"]["mode"] == "at_period_end"
    assert made["features"]["subscription_update"]["proration_behavior"] == "none"
    assert "products" not in made["features"]["subscription_update"]
    assert made["login_page"] == {"enabled": False, "url": None}
    [event] = _events(client, "billing_portal.configuration.created")
    assert event.data.object["id"] == made["id"]


def test_an_update_replaces_what_it_names_and_says_what_changed(
    client: stripe.StripeClient, catalog: Catalog
) -> None:
    made = _configuration(client)
    updated = client.v1.billing_portal.configurations.update(
        made.id,
        params={
            "features": {
                "subscription_update": {
                    "enabled": True,
                    "default_allowed_updates": ["price"],
                    "products": [
                        {"product": str(catalog.monthly.product), "prices": [catalog.monthly.id]}
                    ],
                    "proration_behavior": "always_invoice",
                }
            }
        },
    ).to_dict()
    update = updated["features"]["subscription_update"]
    assert update["enabled"] is True
    assert update["products"][0]["prices"] == [catalog.monthly.id]
    assert updated["features"]["customer_update"] == TOLLGATE_LIKE["customer_update"]
    [event] = _events(client, "billing_portal.configuration.updated")
    assert "features" in event.to_dict()["data"]["previous_attributes"]
    listed = client.v1.billing_portal.configurations.list(params={"is_default": False})
    assert [c.id for c in listed.data] == [made.id]


@pytest.mark.parametrize(
    ("features", "param"),
    [
        (
            {"customer_update": {"enabled": True, "allowed_updates": ["address", "iban"]}},
            "features[customer_update][allowed_updates]",
        ),
        ({"subscription_update": {"enabled": True}}, "features[subscription_update][products]"),
        (
            {"subscription_cancel": {"enabled": True, "proration_behavior": "always_invoice"}},
            "features[subscription_cancel][proration_behavior]",
        ),
        (
            {
                "subscription_cancel": {
                    "enabled": True,
                    "cancellation_reason": {"enabled": True, "options": []},
                }
            },
            "features[subscription_cancel][cancellation_reason][options]",
        ),
    ],
)
def test_a_configuration_stripe_refuses_is_an_invalid_request_naming_the_param(
    client: stripe.StripeClient, features: dict[str, Any], param: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        _configuration(client, **features)
    assert refused.value.param == param
    assert client.v1.billing_portal.configurations.list().data == []


def test_a_bad_update_changes_nothing(client: stripe.StripeClient) -> None:
    made = _configuration(client)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.billing_portal.configurations.update(
            made.id, params={"default_return_url": "not a url", "name": "Renamed"}
        )
    assert refused.value.param == "default_return_url"
    assert client.v1.billing_portal.configurations.retrieve(made.id).to_dict() == made.to_dict()


def test_a_session_names_its_configuration_or_the_accounts_default(
    client: stripe.StripeClient,
) -> None:
    customer = client.v1.customers.create()
    made = _configuration(client)
    named = client.v1.billing_portal.sessions.create(
        params={"customer": customer.id, "configuration": made.id}
    )
    assert named.configuration == made.id
    default = client.v1.billing_portal.sessions.create(params={"customer": customer.id})
    found = client.v1.billing_portal.configurations.retrieve(str(default.configuration))
    assert found.is_default is True
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.billing_portal.sessions.create(
            params={"customer": customer.id, "configuration": "bpc_nope"}
        )
    assert (unknown.value.http_status, unknown.value.param) == (404, "configuration")
    client.v1.billing_portal.configurations.update(made.id, params={"active": False})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.billing_portal.sessions.create(
            params={"customer": customer.id, "configuration": made.id}
        )


def _portal(client: stripe.StripeClient, customer: str, **features: Any) -> str:
    configuration = _configuration(client, **features)
    return str(
        client.v1.billing_portal.sessions.create(
            params={"customer": customer, "configuration": configuration.id}
        ).url
    )


def test_the_page_offers_no_cancel_or_plan_change_when_the_configuration_has_none(
    client: stripe.StripeClient, server: Server, catalog: Catalog
) -> None:
    subscription = subscribe(client, server, catalog.monthly.id)
    url = _portal(client, str(subscription.customer))
    page = server.get(url).body
    assert "Cancel plan" not in page
    assert "Update plan" not in page
    assert "Add tax ID" in page
    assert "Update payment method" in page
    refused = server.post_form(url, {"action": "cancel", "subscription": subscription.id})
    assert refused.status == 402
    assert "This portal does not offer that." in refused.body
    assert client.v1.subscriptions.retrieve(subscription.id).cancel_at_period_end is False


def test_the_page_changes_the_address_and_tax_ids_and_emits_stripes_events(
    client: stripe.StripeClient, server: Server
) -> None:
    customer = client.v1.customers.create(params={"email": "ada@example.com"})
    url = _portal(client, customer.id)
    address = {"line1": "Unter den Linden 1", "city": "Berlin", "postal_code": "10117"}
    saved = server.post_form(
        url, {"action": "details", "name": "Ada L", **address, "country": "de"}
    )
    assert "Your billing information was updated." in saved.body
    changed = client.v1.customers.retrieve(customer.id)
    assert (changed.name, changed.address.country, changed.address.city) == (
        "Ada L",
        "DE",
        "Berlin",
    )
    assert changed.email == "ada@example.com"
    [updated] = _events(client, "customer.updated")
    assert set(updated.to_dict()["data"]["previous_attributes"]) == {"address", "name"}

    bad = server.post_form(url, {"action": "add_tax_id", "type": "eu_vat", "value": "12345"})
    assert "Invalid value for eu_vat." in bad.body
    added = server.post_form(
        url, {"action": "add_tax_id", "type": "eu_vat", "value": "DE 123456789"}
    )
    assert "Your tax ID was added." in added.body
    [tax_id] = client.v1.customers.tax_ids.list(customer.id).data
    assert (tax_id.value, tax_id.country, tax_id.verification.status) == (
        "DE123456789",
        "DE",
        "pending",
    )
    [created] = _events(client, "customer.tax_id.created")
    assert created.data.object["customer"] == customer.id
    expanded = client.v1.customers.retrieve(customer.id, params={"expand": ["tax_ids"]})
    assert [t.id for t in expanded.tax_ids.data] == [tax_id.id]

    server.post_form(url, {"action": "remove_tax_id", "tax_id": tax_id.id})
    assert client.v1.customers.tax_ids.list(customer.id).data == []
    assert len(_events(client, "customer.tax_id.deleted")) == 1
    with pytest.raises(stripe.InvalidRequestError) as gone:
        client.v1.tax_ids.retrieve(tax_id.id)
    assert gone.value.http_status == 404


def test_the_page_does_not_take_what_allowed_updates_leave_out(
    client: stripe.StripeClient, server: Server
) -> None:
    customer = client.v1.customers.create(params={"email": "ada@example.com"})
    url = _portal(
        client,
        customer.id,
        customer_update={"enabled": True, "allowed_updates": ["address"]},
    )
    page = server.get(url).body
    assert "Add tax ID" not in page
    assert 'name="email"' not in page
    refused = server.post_form(
        url, {"action": "add_tax_id", "type": "us_ein", "value": "12-3456789"}
    )
    assert refused.status == 402
    server.post_form(
        url,
        {"action": "details", "email": "eve@example.com", "line1": "1 Main St", "country": "US"},
    )
    assert client.v1.customers.retrieve(customer.id).email == "ada@example.com"
