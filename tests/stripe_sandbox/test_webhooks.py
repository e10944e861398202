"""Signed webhook delivery: accepted by the SDK, retried on failure, order-independent."""

from __future__ import annotations

import random

import stripe

from app.stripe_sandbox import Sandbox


def _endpoint(client: stripe.StripeClient, events: list[str] | None = None) -> str:
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": "http://app.test/stripe/webhook", "enabled_events": events or ["*"]}
    )
    assert endpoint.secret.startswith("whsec_")
    return endpoint.secret


def test_deliveries_verify_with_construct_event_after_clock_moves(
    client: stripe.StripeClient, sandbox: Sandbox
) -> None:
    secret = _endpoint(client)
    customer = client.v1.customers.create(params={"email": "ada@example.com"})
    sandbox.advance(40 * 86400)  # the signature uses wall time, not the sandbox clock
    received: list[stripe.Event] = []

    def receiver(url: str, body: bytes, headers: dict[str, str]) -> int:
        received.append(
            stripe.Webhook.construct_event(body.decode(), headers["Stripe-Signature"], secret)
        )
        return 200

    assert sandbox.deliver_pending(receiver) == 1
    assert [(e.type, e.data.object.id) for e in received] == [("customer.created", customer.id)]
    assert sandbox.pending_deliveries() == []
    assert client.v1.events.retrieve(received[0].id).pending_webhooks == 0


def test_failed_delivery_stays_queued_and_is_retried(
    client: stripe.StripeClient, sandbox: Sandbox
) -> None:
    _endpoint(client)
    client.v1.customers.create()
    assert sandbox.deliver_pending(lambda url, body, headers: 500) == 0
    [pending] = sandbox.pending_deliveries()
    assert pending.attempts == 1
    assert sandbox.deliver_pending(lambda url, body, headers: 204) == 1
    assert sandbox.pending_deliveries() == []


def test_endpoint_gets_only_its_enabled_events(
    client: stripe.StripeClient, sandbox: Sandbox
) -> None:
    _endpoint(client, ["customer.updated"])
    customer = client.v1.customers.create()
    client.v1.customers.update(customer.id, params={"name": "Ada"})
    assert [d.event_type for d in sandbox.pending_deliveries()] == ["customer.updated"]


def test_shuffle_and_duplicate_deliver_every_event_at_least_once(
    client: stripe.StripeClient, sandbox: Sandbox
) -> None:
    secret = _endpoint(client)
    created = [client.v1.customers.create().id for _ in range(5)]
    seen: list[str] = []

    def receiver(url: str, body: bytes, headers: dict[str, str]) -> int:
        event = stripe.Webhook.construct_event(body.decode(), headers["Stripe-Signature"], secret)
        seen.append(event.data.object.id)
        return 200

    assert (
        sandbox.deliver_pending(receiver, shuffle=True, duplicate=True, rng=random.Random(3)) == 5
    )
    assert sorted(seen) == sorted(created * 2)
    assert seen != [c for c in created for _ in (0, 1)]
