"""customer.subscription.created, .updated, .deleted and .trial_will_end"""

from __future__ import annotations

import stripe

from app.billing.gateway import gateway
from app.billing.sync import sync_subscription


def handle_changed(event: stripe.Event) -> None:
    """Mirror the subscription as Stripe has it now, not as the event's snapshot had it."""
    sync_subscription(gateway().retrieve_subscription(event.data.object["id"]))
