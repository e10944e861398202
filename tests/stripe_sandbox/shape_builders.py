"""One builder per object type the sandbox serves: the fewest parameters, or as many as it takes.

Each builder goes through the SDK, as Tollgate does, and returns the objects it made as the raw
JSON the SDK received.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import stripe

from app.stripe_sandbox import Sandbox

from .conftest import Catalog, Server, pay

Raw = dict[str, Any]
ADDRESS = {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}


@dataclass
class World:
    client: stripe.StripeClient
    server: Server
    catalog: Catalog
    sandbox: Sandbox


def _raw(*objects: stripe.StripeObject) -> list[Raw]:
    return [o.to_dict() for o in objects]


def customer(w: World, full: bool) -> list[Raw]:
    if not full:
        return _raw(w.client.v1.customers.create())
    clock = w.client.v1.test_helpers.test_clocks.create(params={"frozen_time": w.sandbox.now()})
    made = w.client.v1.customers.create(
        params={
            "email": "ada@example.com",
            "name": "Ada",
            "phone": "+15555550100",
            "description": "first",
            "address": ADDRESS,
            "shipping": {"name": "Ada", "address": ADDRESS},
            "metadata": {"user": "7"},
            "preferred_locales": ["en"],
            "tax_exempt": "none",
            "invoice_settings": {"footer": "Thanks"},
            "test_clock": clock.id,
        }
    )
    updated = w.client.v1.customers.update(made.id, params={"name": "Ada L."})
    return _raw(made, updated)


def product(w: World, full: bool) -> list[Raw]:
    if not full:
        return _raw(w.client.v1.products.create(params={"name": "Basic"}))
    made = w.client.v1.products.create(
        params={
            "name": "Pro",
            "description": "Everything",
            "images": ["http://app.test/pro.png"],
            "metadata": {"tier": "pro"},
            "shippable": False,
            "statement_descriptor": "TOLLGATE PRO",
            "unit_label": "seat",
            "url": "http://app.test/pro",
        }
    )
    return _raw(made, w.client.v1.products.update(made.id, params={"active": False}))


def price(w: World, full: bool) -> list[Raw]:
    if not full:
        prod = w.client.v1.products.create(params={"name": "Once"})
        return _raw(
            w.client.v1.prices.create(
                params={"currency": "usd", "product": prod.id, "unit_amount": 500}
            )
        )
    made = w.client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount_decimal": "0.5",
            "product_data": {"name": "Calls"},
            "recurring": {
                "interval": "month",
                "usage_type": "metered",
                "meter": w.catalog.meter.id,
            },
            "transform_quantity": {"divide_by": 100, "round": "up"},
            "lookup_key": "calls",
            "nickname": "Calls",
            "tax_behavior": "exclusive",
            "metadata": {"kind": "usage"},
        }
    )
    return _raw(made, w.client.v1.prices.update(made.id, params={"nickname": "API calls"}))


def _session_params(full: bool, price_id: str) -> stripe.params.checkout.SessionCreateParams:
    params: stripe.params.checkout.SessionCreateParams = {
        "mode": "subscription",
        "line_items": [{"price": price_id}],
        "success_url": "http://app.test/ok",
    }
    if full:
        params.update(
            cancel_url="http://app.test/no",
            customer_email="ada@example.com",
            client_reference_id="user-7",
            metadata={"user": "7"},
            subscription_data={
                "trial_period_days": 14,
                "metadata": {"user": "7"},
                "description": "Pro",
                "trial_settings": {"end_behavior": {"missing_payment_method": "pause"}},
            },
            payment_method_collection="if_required",
            allow_promotion_codes=True,
        )
    return params


def checkout_session(w: World, full: bool) -> list[Raw]:
    made = w.client.v1.checkout.sessions.create(params=_session_params(full, w.catalog.monthly.id))
    items = w.client.v1.checkout.sessions.line_items.list(made.id)
    if not full:
        return _raw(made, *items.data)
    assert pay(w.server, made, "4242 4242 4242 4242").status == 303
    done = w.client.v1.checkout.sessions.retrieve(made.id, params={"expand": ["line_items"]})
    expired = w.client.v1.checkout.sessions.create(
        params=_session_params(True, w.catalog.monthly.id)
    )
    expired = w.client.v1.checkout.sessions.expire(expired.id)
    return _raw(made, *items.data, done, expired)


def subscription(w: World, full: bool) -> list[Raw]:
    """Minimal: straight over the API (left incomplete, no card); full: Checkout, updated."""
    if not full:
        cus = w.client.v1.customers.create()
        return _raw(
            w.client.v1.subscriptions.create(
                params={"customer": cus.id, "items": [{"price": w.catalog.monthly.id}]}
            )
        )
    session = w.client.v1.checkout.sessions.create(
        params=_session_params(True, w.catalog.monthly.id)
    )
    pay(w.server, session, "4242 4242 4242 4242")
    sub_id = w.client.v1.checkout.sessions.retrieve(session.id).subscription
    updated = w.client.v1.subscriptions.update(
        sub_id,
        params={"metadata": {"seen": "1"}, "items": [{"price": w.catalog.usage.id}]},
    )
    w.sandbox.advance(15 * 86400)
    renewed = w.client.v1.subscriptions.retrieve(sub_id)
    canceled = w.client.v1.subscriptions.cancel(sub_id)
    return _raw(updated, renewed, canceled)


def subscription_item(w: World, full: bool) -> list[Raw]:
    subs = [s for s in subscription(w, full) if s["status"] != "canceled"]
    return [
        w.client.v1.subscription_items.retrieve(item["id"]).to_dict()
        for sub in subs
        for item in sub["items"]["data"]
    ]


def invoice(w: World, full: bool) -> list[Raw]:
    subs = subscription(w, full)
    found = [w.client.v1.invoices.retrieve(s["latest_invoice"]) for s in subs]
    if full:
        live = w.client.v1.subscriptions.create(
            params={"customer": subs[0]["customer"], "items": [{"price": w.catalog.monthly.id}]}
        )
        found.append(
            w.client.v1.invoices.create_preview(
                params={
                    "subscription": live.id,
                    "subscription_details": {"items": [{"price": w.catalog.usage.id}]},
                }
            )
        )
    return _raw(*found)


def billing_meter(w: World, full: bool) -> list[Raw]:
    params: stripe.params.billing.MeterCreateParams = {
        "display_name": "Seats",
        "event_name": f"seats_{full}",
        "default_aggregation": {"formula": "sum"},
    }
    if full:
        params.update(
            customer_mapping={"event_payload_key": "cus", "type": "by_id"},
            value_settings={"event_payload_key": "n"},
        )
    return _raw(w.client.v1.billing.meters.create(params=params))


def billing_meter_event(w: World, full: bool) -> list[Raw]:
    cus = w.client.v1.customers.create()
    params: stripe.params.billing.MeterEventCreateParams = {
        "event_name": "api_call",
        "payload": {"stripe_customer_id": cus.id, "value": "3"},
    }
    if full:
        params.update(identifier="call-1", timestamp=w.sandbox.now() - 60)
    return _raw(w.client.v1.billing.meter_events.create(params=params))


def billing_meter_event_summary(w: World, full: bool) -> list[Raw]:
    """Minimal: one summary of two hours; full: one per hour with usage."""
    cus = w.client.v1.customers.create()
    hour = w.sandbox.now() // 3600 * 3600
    for at, value in ((hour - 7000, "2"), (hour - 3000, "3")):
        w.client.v1.billing.meter_events.create(
            params={
                "event_name": "api_call",
                "payload": {"stripe_customer_id": cus.id, "value": value},
                "timestamp": at,
            }
        )
    params: stripe.params.billing.MeterEventSummaryListParams = {
        "customer": cus.id,
        "start_time": hour - 7200,
        "end_time": hour,
    }
    if full:
        params["value_grouping_window"] = "hour"
    summaries = w.client.v1.billing.meters.event_summaries.list(w.catalog.meter.id, params=params)
    return _raw(*summaries.data)


def billing_portal_session(w: World, full: bool) -> list[Raw]:
    cus = w.client.v1.customers.create()
    params: stripe.params.billing_portal.SessionCreateParams = {"customer": cus.id}
    if full:
        params.update(return_url="http://app.test/account", locale="en")
    return _raw(w.client.v1.billing_portal.sessions.create(params=params))


def billing_portal_configuration(w: World, full: bool) -> list[Raw]:
    configurations = w.client.v1.billing_portal.configurations
    if not full:
        return _raw(
            configurations.create(params={"features": {"invoice_history": {"enabled": True}}})
        )
    made = configurations.create(
        params={
            "business_profile": {"headline": "Acme", "privacy_policy_url": "https://a.test/p"},
            "default_return_url": "http://app.test/account",
            "features": {
                "customer_update": {"enabled": True, "allowed_updates": ["address", "tax_id"]},
                "invoice_history": {"enabled": True},
                "payment_method_update": {"enabled": True},
                "subscription_cancel": {
                    "enabled": True,
                    "mode": "at_period_end",
                    "cancellation_reason": {"enabled": True, "options": ["too_expensive"]},
                },
            },
            "metadata": {"app": "tollgate"},
            "name": "Tollgate",
        }
    )
    updated = configurations.update(
        made.id, params={"features": {"invoice_history": {"enabled": False}}}
    )
    return _raw(made, updated, configurations.retrieve(made.id))


def tax_id(w: World, full: bool) -> list[Raw]:
    cus = w.client.v1.customers.create()
    value = "DE123456789" if full else "12-3456789"
    made = w.client.v1.customers.tax_ids.create(
        cus.id, params={"type": "eu_vat" if full else "us_ein", "value": value}
    )
    return _raw(made, w.client.v1.tax_ids.retrieve(made.id))


def webhook_endpoint(w: World, full: bool) -> list[Raw]:
    params: stripe.params.WebhookEndpointCreateParams = {
        "url": "http://app.test/hook",
        "enabled_events": ["*"],
    }
    if not full:
        return _raw(w.client.v1.webhook_endpoints.create(params=params))
    params.update(description="Tollgate", metadata={"env": "test"}, api_version=stripe.api_version)
    made = w.client.v1.webhook_endpoints.create(params=params)
    updated = w.client.v1.webhook_endpoints.update(made.id, params={"disabled": True})
    return _raw(made, updated, w.client.v1.webhook_endpoints.retrieve(made.id))


def event(w: World, full: bool) -> list[Raw]:
    (subscription if full else customer)(w, full)
    return _raw(*w.client.v1.events.list(params={"limit": 100}).data)


def test_clock(w: World, full: bool) -> list[Raw]:
    params: stripe.params.test_helpers.TestClockCreateParams = {"frozen_time": w.sandbox.now()}
    if not full:
        return _raw(w.client.v1.test_helpers.test_clocks.create(params=params))
    made = w.client.v1.test_helpers.test_clocks.create(params={**params, "name": "renewals"})
    moved = w.client.v1.test_helpers.test_clocks.advance(
        made.id, params={"frozen_time": made.frozen_time + 86400}
    )
    return _raw(made, moved)


def subscription_schedule(w: World, full: bool) -> list[Raw]:
    cus = w.client.v1.customers.create()
    sub = w.client.v1.subscriptions.create(
        params={"customer": cus.id, "items": [{"price": w.catalog.monthly.id}]}
    )
    made = w.client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    if not full:
        return _raw(made)
    phase = made.phases[0]
    updated = w.client.v1.subscription_schedules.update(
        made.id,
        params={
            "metadata": {"plan": "switch"},
            "end_behavior": "cancel",
            "phases": [
                {"items": [{"price": w.catalog.monthly.id}], "start_date": phase.start_date},
                {"items": [{"price": w.catalog.usage.id}]},
            ],
        },
    )
    released = w.client.v1.subscription_schedules.release(made.id)
    return _raw(made, updated, released)


def payment_method(w: World, full: bool) -> list[Raw]:
    session = w.client.v1.checkout.sessions.create(
        params=_session_params(full, w.catalog.monthly.id)
    )
    pay(w.server, session, "4242 4242 4242 4242")
    cus = w.client.v1.customers.retrieve(
        str(w.client.v1.checkout.sessions.retrieve(session.id).customer)
    )
    method = cus.invoice_settings.default_payment_method
    return _raw(w.client.v1.payment_methods.retrieve(str(method)))


def _bought(w: World, card: str, **extra: Any) -> str:
    """A $15/month subscription bought through Checkout with a test card; its customer."""
    params: stripe.params.checkout.SessionCreateParams = {
        "mode": "subscription",
        "line_items": [{"price": w.catalog.monthly.id}],
        "success_url": "http://app.test/ok",
        **extra,  # type: ignore[typeddict-item]
    }
    session = w.client.v1.checkout.sessions.create(params=params)
    assert pay(w.server, session, card).status == 303
    return str(w.client.v1.checkout.sessions.retrieve(session.id).customer)


def _declined_renewal(w: World) -> str:
    """A one-day trial on the card that fails every charge, then its first invoice; the
    customer."""
    customer = _bought(w, "4000 0000 0000 0341", subscription_data={"trial_period_days": 1})
    w.sandbox.advance(2 * 86400)
    return customer


def _charges(w: World, customer: str) -> list[stripe.Charge]:
    return list(w.client.v1.charges.list(params={"customer": customer}).data)


def charge(w: World, full: bool) -> list[Raw]:
    """Minimal: a paid first invoice; full: a German card billed to an address, a declined
    renewal, a partly refunded charge and a disputed one."""
    if not full:
        return _raw(*_charges(w, _bought(w, "4242 4242 4242 4242")))
    addressed = w.client.v1.customers.create(params={"address": ADDRESS, "email": "a@b.test"})
    _bought(w, "4000 0027 6000 0016", customer=addressed.id)
    refunded = _charges(w, _bought(w, "4242 4242 4242 4242"))[0]
    w.client.v1.refunds.create(params={"charge": refunded.id, "amount": 500})
    customers = [addressed.id, _declined_renewal(w), _bought(w, "4000 0000 0000 0259")]
    charges = [c for customer in customers for c in _charges(w, customer)]
    return _raw(*charges, w.client.v1.charges.retrieve(refunded.id))


def refund(w: World, full: bool) -> list[Raw]:
    """Minimal: all of a charge; full: part of a PaymentIntent's, with a reason and
    metadata, then the rest."""
    paid = _charges(w, _bought(w, "4242 4242 4242 4242"))[0]
    if not full:
        return _raw(w.client.v1.refunds.create(params={"charge": paid.id}))
    part = w.client.v1.refunds.create(
        params={
            "payment_intent": str(paid.payment_intent),
            "amount": 500,
            "reason": "requested_by_customer",
            "metadata": {"ticket": "42"},
        }
    )
    rest = w.client.v1.refunds.create(params={"charge": paid.id, "reason": "duplicate"})
    return _raw(part, rest, w.client.v1.refunds.retrieve(part.id))


def dispute(w: World, full: bool) -> list[Raw]:
    """Minimal: as the dispute test card opens it; full: evidence staged, submitted and won,
    and another accepted (closed as lost)."""

    def opened() -> stripe.Dispute:
        paid = _charges(w, _bought(w, "4000 0000 0000 0259"))[0]
        return w.client.v1.disputes.list(params={"charge": paid.id}).data[0]

    first = opened()
    if not full:
        return _raw(first)
    staged = w.client.v1.disputes.update(
        first.id,
        params={
            "evidence": {
                "product_description": "API plan",
                "uncategorized_text": "winning_evidence",
            },
            "metadata": {"case": "7"},
            "submit": False,
        },
    )
    submitted = w.client.v1.disputes.update(first.id, params={"submit": True})
    w.sandbox.advance(0)
    won = w.client.v1.disputes.retrieve(first.id)
    return _raw(staged, submitted, won, w.client.v1.disputes.close(opened().id))


def payment_intent(w: World, full: bool) -> list[Raw]:
    """Minimal: a paid invoice's; full: also a declined one's, waiting for another card."""
    customers = [_bought(w, "4242 4242 4242 4242")] + ([_declined_renewal(w)] if full else [])
    return _raw(
        *(
            intent
            for customer in customers
            for intent in w.client.v1.payment_intents.list(params={"customer": customer}).data
        )
    )


def invoice_payment(w: World, full: bool) -> list[Raw]:
    """Minimal: a paid invoice's, listed by invoice; full: an unpaid one's, found by its
    PaymentIntent, and both read through the invoice's expanded `payments`."""
    customers = [_bought(w, "4242 4242 4242 4242")] + ([_declined_renewal(w)] if full else [])
    invoices = [
        invoice
        for customer in customers
        for invoice in w.client.v1.invoices.list(params={"customer": customer}).data
        if invoice.amount_due
    ]
    found = [w.client.v1.invoice_payments.list(params={"invoice": i.id}).data[0] for i in invoices]
    if not full:
        return _raw(*found)
    by_intent = [
        w.client.v1.invoice_payments.list(
            params={
                "payment": {
                    "type": "payment_intent",
                    "payment_intent": str(payment.payment.payment_intent),
                }
            }
        ).data[0]
        for payment in found
    ]
    expanded = [
        w.client.v1.invoices.retrieve(i.id, params={"expand": ["payments"]}).payments.data[0]
        for i in invoices
    ]
    return _raw(*found, *by_intent, *expanded)


BUILDERS: dict[str, Callable[[World, bool], list[Raw]]] = {
    "customer": customer,
    "product": product,
    "price": price,
    "checkout.session": checkout_session,
    "subscription": subscription,
    "subscription_item": subscription_item,
    "invoice": invoice,
    "billing.meter": billing_meter,
    "billing.meter_event": billing_meter_event,
    "billing.meter_event_summary": billing_meter_event_summary,
    "billing_portal.session": billing_portal_session,
    "billing_portal.configuration": billing_portal_configuration,
    "tax_id": tax_id,
    "webhook_endpoint": webhook_endpoint,
    "event": event,
    "test_helpers.test_clock": test_clock,
    "subscription_schedule": subscription_schedule,
    "payment_method": payment_method,
    "charge": charge,
    "refund": refund,
    "dispute": dispute,
    "payment_intent": payment_intent,
    "invoice_payment": invoice_payment,
}
