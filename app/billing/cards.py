"""The card Stripe charges a customer's renewals with, as far as the back office needs it:
brand, last four digits and when it stops working (never the number).

Stripe charges a subscription's own ``default_payment_method`` first, else the customer's
``invoice_settings.default_payment_method`` (API reference, Subscription.default_payment_method).
Checkout in subscription mode sets the subscription's; the customer portal and the API set the
customer's (the portal sets its subscriptions' too). So both syncs mirror the card they read:
a live subscription's own, and the customer's default. A subscription whose own card differs
from the customer's default (set by hand in the dashboard) shows the customer's after a
``customer.updated`` until its own next sync, which every invoice of it brings.
"""

from __future__ import annotations

import calendar
from datetime import date
from typing import Any

import stripe

from app.accounts.models import Customer


def card_expires_on(exp_month: int, exp_year: int) -> date:
    """A card works through the last day of its expiry month."""
    return date(exp_year, exp_month, calendar.monthrange(exp_year, exp_month)[1])


def mirror_default_card(customer: Customer, payment_method: Any) -> None:
    """Mirror a default payment method that came expanded and is a card; an id (not expanded),
    none at all, or another kind of method leaves the mirrored card as it was."""
    if not isinstance(payment_method, stripe.PaymentMethod):
        return
    card = getattr(payment_method, "card", None)
    if card is None:
        return
    customer.card_brand = card.brand
    customer.card_last4 = card.last4
    customer.card_expires_on = card_expires_on(card.exp_month, card.exp_year)
