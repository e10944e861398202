"""invoice.created, .finalized, .paid, .payment_succeeded and .payment_failed"""

from __future__ import annotations

import stripe

from app.billing.gateway import gateway
from app.billing.sync import sync_invoice


def handle_changed(event: stripe.Event) -> None:
    """Mirror the invoice (and its subscription) as Stripe has them now."""
    sync_invoice(gateway().retrieve_invoice(event.data.object["id"]))
