"""Usage alerts: 80% and 100% of a limit, an allowance or a period's plan credits, once a period."""

from __future__ import annotations

from sqlalchemy import select

from app.accounts.models import Customer
from app.clock import now
from app.entitlements.access import current_subscription, period_key
from app.entitlements.checks import Evaluation
from app.entitlements.models import AlertSubject, UsageAlert
from app.extensions import db

THRESHOLDS = (80, 100)


def note_thresholds(customer_id: int, evaluation: Evaluation) -> None:
    """Record the thresholds that an event just recorded made the customer pass."""
    allowance = evaluation.allowance
    key = evaluation.access.period_key
    if allowance is not None and not allowance.unlimited:
        base = allowance.limit or allowance.included
        used = evaluation.used + evaluation.units
        _note(customer_id, key, AlertSubject.FEATURE, evaluation.feature_key, used, base)
    plan = evaluation.access.plan
    drawn = {draw.pool_key for draw in evaluation.credit_draws()}
    for grant in plan.credits if plan else []:
        if grant.pool in drawn:
            pool_ids = {pool.id for pool in evaluation.pools if pool.key == grant.pool}
            left = sum(lot.remaining for lot in evaluation.lots if lot.pool_id in pool_ids)
            spent = max(grant.amount - left, 0)
            _note(customer_id, key, AlertSubject.CREDITS, grant.pool, spent, grant.amount)


def _note(
    customer_id: int, period: str, subject: AlertSubject, key: str, used: int, of: int
) -> None:
    if of <= 0:
        return
    for threshold in THRESHOLDS:
        if used * 100 < threshold * of:
            return
        exists = db.session.scalar(
            select(UsageAlert.id).where(
                UsageAlert.customer_id == customer_id,
                UsageAlert.period_key == period,
                UsageAlert.subject == subject,
                UsageAlert.key == key,
                UsageAlert.threshold == threshold,
            )
        )
        if exists is None:
            db.session.add(
                UsageAlert(
                    customer_id=customer_id,
                    period_key=period,
                    subject=subject,
                    key=key,
                    threshold=threshold,
                    used=used,
                    of=of,
                    created_at=now(),
                )
            )


def alerts_for(customer: Customer) -> list[UsageAlert]:
    """The alerts of the customer's current period, oldest first."""
    key = period_key(current_subscription(customer.id))
    return list(
        db.session.scalars(
            select(UsageAlert)
            .where(UsageAlert.customer_id == customer.id, UsageAlert.period_key == key)
            .order_by(UsageAlert.id)
        )
    )
