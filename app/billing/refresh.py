"""Read every live subscription from Stripe again and mirror it: the nightly catch-up for a
webhook that never came (an endpoint down past Stripe's three days of retries)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import select

from app.accounts.mirror import LIVE_STATUSES, Subscription
from app.billing.gateway import GatewayError
from app.billing.sync import mirror_subscription
from app.extensions import db

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefreshReport:
    """Subscriptions read and mirrored, and those Stripe did not answer for (next night's)."""

    refreshed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def refresh_live_subscriptions() -> RefreshReport:
    """Mirror each trialing, active or past-due subscription as Stripe has it now; owns its
    commits (one per subscription, none open while Stripe answers)."""
    stripe_ids = db.session.scalars(
        select(Subscription.stripe_subscription_id)
        .where(Subscription.status.in_(LIVE_STATUSES))
        .order_by(Subscription.id)
    ).all()
    db.session.rollback()
    failed: list[tuple[str, str]] = []
    for stripe_id in stripe_ids:
        try:
            mirror_subscription(stripe_id)
        except GatewayError as exc:
            log.warning("refreshing subscription %s failed: %s", stripe_id, exc)
            failed.append((stripe_id, str(exc)))
    return RefreshReport(refreshed=len(stripe_ids) - len(failed), failed=failed)
