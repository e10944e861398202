"""What a resource handler sees: the store, the clocks and the event log of one request."""

from __future__ import annotations

import copy
import time
from typing import Any

import stripe

from .errors import no_such
from .shapes import complete
from .store import Store, new_id

API_VERSION: str = stripe.api_version
# Trials, periods and dunning are counted in days of the sandbox clock.
DAY = 86400
_CLOCK_OFFSET_KEY = "clock_offset"
# Every event type the sandbox sends; each is one the SDK knows (tests/stripe_sandbox/test_shapes).
EVENT_TYPES = frozenset(
    {
        "billing_portal.configuration.created",
        "billing_portal.configuration.updated",
        "charge.dispute.closed",
        "charge.dispute.created",
        "charge.dispute.funds_reinstated",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.updated",
        "charge.failed",
        "charge.refunded",
        "charge.succeeded",
        "checkout.session.completed",
        "checkout.session.expired",
        "customer.created",
        "customer.deleted",
        "customer.subscription.created",
        "customer.subscription.deleted",
        "customer.subscription.pending_update_expired",
        "customer.subscription.trial_will_end",
        "customer.subscription.updated",
        "customer.tax_id.created",
        "customer.tax_id.deleted",
        "customer.updated",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_failed",
        "invoice.payment_succeeded",
        "invoice_payment.paid",
        "payment_intent.canceled",
        "payment_intent.created",
        "payment_intent.payment_failed",
        "payment_intent.succeeded",
        "payment_method.attached",
        "price.created",
        "price.updated",
        "product.created",
        "product.updated",
        "refund.created",
        "subscription_schedule.canceled",
        "subscription_schedule.completed",
        "subscription_schedule.created",
        "subscription_schedule.released",
        "subscription_schedule.updated",
        "test_helpers.test_clock.ready",
    }
)


def public(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as the API shows it: private `_bookkeeping` keys removed."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def global_now(store: Store) -> int:
    """Real time plus the offset that `Sandbox.advance` has accumulated."""
    return int(time.time()) + int(store.meta(_CLOCK_OFFSET_KEY, "0"))


def shift_global_clock(store: Store, seconds: int) -> None:
    """Move the global clock forward for good; a move of nothing writes nothing."""
    if seconds:
        store.add_to_meta(_CLOCK_OFFSET_KEY, seconds)


class Ctx:
    """One unit of work: a request, a hosted-page action or a clock step."""

    def __init__(
        self,
        store: Store,
        base_url: str,
        request_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        self.store = store
        self.base_url = base_url
        self.request = {"id": request_id, "idempotency_key": idempotency_key}
        # While a clock advances, its time is pinned to the step being processed.
        self.pinned: dict[str | None, int] = {}

    def now(self, clock_id: str | None = None) -> int:
        """Time on a test clock (frozen) or on the global sandbox clock."""
        if clock_id in self.pinned:
            return self.pinned[clock_id]
        if clock_id is None:
            return global_now(self.store)
        return int(self.fetch("test_helpers.test_clock", clock_id)["frozen_time"])

    def fetch(self, object_type: str, object_id: str, param: str = "id") -> dict[str, Any]:
        """A stored object of the given type, or Stripe's 404."""
        obj = self.store.get(object_id) if isinstance(object_id, str) else None
        if obj is None or obj["object"] != object_type or obj.get("deleted"):
            raise no_such(object_type.rsplit(".", 1)[-1].replace("_", " "), str(object_id), param)
        return obj

    def save(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Persist an object, with every field Stripe sends for its type, and return it."""
        return self.store.put(complete(obj))

    def emit(
        self,
        event_type: str,
        obj: dict[str, Any],
        previous: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record an event about `obj` and queue it for every endpoint that wants it; an
        `*.updated` event given the object as it was says what changed."""
        if event_type not in EVENT_TYPES:
            raise ValueError(f"the sandbox does not declare the event type {event_type}")
        data: dict[str, Any] = {"object": complete(copy.deepcopy(public(obj)))}
        # Stripe includes previous_attributes "only in events of type *.updated" (API
        # reference: the Event object).
        if previous is not None and event_type.endswith(".updated"):
            data["previous_attributes"] = _changed(previous, obj)
        endpoints = [
            e
            for e in self.store.all("webhook_endpoint")
            if e["status"] == "enabled"
            and ("*" in e["enabled_events"] or event_type in e["enabled_events"])
        ]
        event = {
            "id": new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self.now(obj.get("test_clock")),
            "data": data,
            "livemode": False,
            "pending_webhooks": len(endpoints),
            "request": dict(self.request),
            "type": event_type,
        }
        self.save(event)
        for endpoint in endpoints:
            self.store.queue_delivery(str(event["id"]), endpoint["id"], time.time())
        return event


def _changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    # Stripe's previous_attributes holds the old value of each top-level field that changed.
    return {k: v for k, v in public(before).items() if after.get(k) != v}


def snapshot(obj: dict[str, Any]) -> dict[str, Any]:
    """A deep copy to diff against after a change (for `previous_attributes`)."""
    return copy.deepcopy(obj)
