"""Usage alerts: 80% and 100% of a limit, an allowance or a period's plan credits, once a period."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, insert, select

from app.accounts.models import Customer
from app.catalog import MeteredAllowance
from app.entitlements.access import current_subscription, period_key
from app.entitlements.checks import Cover, CreditDraw
from app.entitlements.ledger import LotBalance
from app.entitlements.models import AlertSubject, UsageAlert
from app.entitlements.sql import insert_rows, pair_in, pairs, statement_per_dialect
from app.extensions import db

THRESHOLDS = (80, 100)


@dataclass(frozen=True)
class Alert:
    """A threshold an event made the customer pass, with the figures at that moment."""

    customer_id: int
    period_key: str
    subject: AlertSubject
    key: str
    threshold: int
    used: int
    of: int

    @property
    def identity(self) -> tuple[int, str, str, str, int]:
        """What makes the alert happen once a period."""
        return (self.customer_id, self.period_key, self.subject.value, self.key, self.threshold)


def thresholds_passed(
    customer_id: int,
    feature_key: str,
    result: Cover,
    drawn: Sequence[CreditDraw],
    lots_after: Sequence[LotBalance],
) -> list[Alert]:
    """The thresholds a recorded event stands past: its feature's, and the drawn pools'."""
    period = result.access.period_key
    alerts = []
    base = alert_base(result.allowance)
    if base:
        used = result.used + result.units
        alerts += _passed(customer_id, period, AlertSubject.FEATURE, feature_key, used, base)
    plan = result.access.plan
    if not drawn or plan is None:
        return alerts
    drawn_pools = {draw.pool_key for draw in drawn}
    for grant in plan.credits:
        if grant.pool in drawn_pools:
            left = sum(lot.remaining for lot in lots_after if lot.pool_key == grant.pool)
            spent = max(grant.amount - left, 0)
            alerts += _passed(
                customer_id, period, AlertSubject.CREDITS, grant.pool, spent, grant.amount
            )
    return alerts


def alert_base(allowance: MeteredAllowance | None) -> int:
    """What a feature's alerts measure usage against: its limit, else its included units; 0
    when it has none (unlimited, or on or off)."""
    if allowance is None or allowance.unlimited:
        return 0
    return allowance.limit or allowance.included


def short_of_thresholds(used: int, of: int) -> bool:
    """Whether ``used`` of ``of`` passes no threshold (nor can, with ``of`` 0), as nearly every
    event of a batch does."""
    return of <= 0 or used * 100 < THRESHOLDS[0] * of


def _passed(
    customer_id: int, period: str, subject: AlertSubject, key: str, used: int, of: int
) -> list[Alert]:
    if short_of_thresholds(used, of):
        return []
    return [
        Alert(customer_id, period, subject, key, threshold, used, of)
        for threshold in THRESHOLDS
        if used * 100 >= threshold * of
    ]


@statement_per_dialect
def _stored_alerts() -> Select[int, str, AlertSubject, str, int]:
    return select(
        UsageAlert.customer_id,
        UsageAlert.period_key,
        UsageAlert.subject,
        UsageAlert.key,
        UsageAlert.threshold,
    ).where(pair_in(UsageAlert.customer_id, UsageAlert.period_key, "periods"))


def save_alerts(alerts: Sequence[Alert], at: datetime) -> None:
    """Store each alert not stored before; the first of a period keeps its figures."""
    first: dict[tuple[int, str, str, str, int], Alert] = {}
    for alert in alerts:
        first.setdefault(alert.identity, alert)
    if not first:
        return
    periods = {(alert.customer_id, alert.period_key) for alert in first.values()}
    stored = db.session.connection().execute(_stored_alerts(), pairs("periods", periods))
    for customer_id, period, subject, key, threshold in stored:
        first.pop((customer_id, period, subject.value, key, threshold), None)
    insert_rows(
        insert(UsageAlert),
        [
            {
                "customer_id": alert.customer_id,
                "period_key": alert.period_key,
                "subject": alert.subject,
                "key": alert.key,
                "threshold": alert.threshold,
                "used": alert.used,
                "of": alert.of,
                "created_at": at,
            }
            for alert in first.values()
        ],
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
