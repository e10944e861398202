"""checkout.session.completed"""

from __future__ import annotations

import stripe

from app.billing.gateway import gateway
from app.billing.sync import sync_checkout_session


def handle_completed(event: stripe.Event) -> None:
    """Apply the Checkout Session as Stripe has it now."""
    sync_checkout_session(gateway().retrieve_checkout_session(event.data.object["id"]))
