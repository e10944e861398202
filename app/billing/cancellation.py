"""Cancelling at period end, resuming, and cancelling now: what the account page and the API
share. As with plan changes (changes.py), every write carries the intent's idempotency key and
the subscription is read back from Stripe after it.
"""

from __future__ import annotations

from app.accounts.mirror import Subscription
from app.billing.changes import ChangeError, release_schedule, resync
from app.billing.gateway import gateway


def cancel_at_period_end(subscription: Subscription, intent: str) -> Subscription:
    """Stop renewing; access goes on until the period ends (a trial until it ends).

    A scheduled downgrade is dropped: the subscription ends instead of renewing on another
    plan, and resuming renews the current plan. The account page says so before the customer
    confirms; the downgrade can be scheduled again after resuming.
    """
    if not subscription.is_live:
        raise ChangeError("This subscription has ended.", "subscription_ended")
    stripe_subscription = gateway().retrieve_subscription(subscription.stripe_subscription_id)
    release_schedule(stripe_subscription)
    return _set_cancel_at_period_end(subscription, True, intent)


def resume(subscription: Subscription, intent: str) -> Subscription:
    """Undo a cancellation at period end."""
    if not subscription.cancel_at_period_end or not subscription.is_live:
        raise ChangeError("There is no cancellation to undo.", "not_cancelling")
    return _set_cancel_at_period_end(subscription, False, intent)


def cancel_now(subscription: Subscription) -> Subscription:
    """End the subscription at once: no more access, remaining plan credits clawed back.

    The clawback is the sync path's: it follows from Stripe's cancelled subscription, so a
    webhook that reports the cancellation does the same, once. Purchased and promotional
    credits stay.
    """
    if not subscription.is_live:
        raise ChangeError("This subscription has ended.", "subscription_ended")
    stripe_subscription = gateway().retrieve_subscription(subscription.stripe_subscription_id)
    release_schedule(stripe_subscription)
    gateway().cancel_subscription(subscription.stripe_subscription_id)
    return resync(subscription)


def _set_cancel_at_period_end(
    subscription: Subscription, cancel: bool, intent: str
) -> Subscription:
    operation = "cancel-at-end" if cancel else "resume"
    gateway().update_subscription(
        subscription.stripe_subscription_id,
        {"cancel_at_period_end": cancel},
        idempotency_key=f"tollgate-{operation}-{subscription.stripe_subscription_id}-{intent}",
    )
    return resync(subscription)
