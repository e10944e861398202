"""Credit pools: grants, and the ledger that every movement goes through."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from app.catalog import Plan
from app.entitlements.models import CreditLedgerEntry, CreditPool, LedgerKind
from app.extensions import db


def pool_for(customer_id: int, key: str, denomination: str) -> CreditPool:
    """The customer's pool ``key``, created empty on first use."""
    pool = db.session.scalar(
        select(CreditPool).where(CreditPool.customer_id == customer_id, CreditPool.key == key)
    )
    if pool is None:
        pool = CreditPool(customer_id=customer_id, key=key, denomination=denomination, balance=0)
        db.session.add(pool)
        db.session.flush()
    return pool


def record_entry(
    pool: CreditPool, kind: LedgerKind, amount: int, source: str, plan_key: str | None = None
) -> bool:
    """Append one ledger entry and move the balance with it; False if ``source`` moved it before."""
    already = db.session.scalar(
        select(CreditLedgerEntry.id).where(
            CreditLedgerEntry.pool_id == pool.id, CreditLedgerEntry.source == source
        )
    )
    if already is not None:
        return False
    db.session.add(
        CreditLedgerEntry(pool=pool, kind=kind, amount=amount, source=source, plan_key=plan_key)
    )
    pool.balance += amount
    db.session.flush()
    return True


@dataclass(frozen=True)
class Period:
    """A billing period of a subscription, as Stripe set it; ``key`` names it uniquely."""

    key: str
    start: datetime
    end: datetime


def grant_plan_credits(customer_id: int, plan: Plan, period: Period) -> None:
    """Grant the plan's credits for one paid period, at most once per period and pool."""
    for grant in plan.credits:
        pool = pool_for(customer_id, grant.pool, grant.denomination)
        record_entry(pool, LedgerKind.GRANT, grant.amount, f"plan:{period.key}", plan.key)


def balances(customer_id: int) -> list[CreditPool]:
    """The customer's pools, by key."""
    return list(
        db.session.scalars(
            select(CreditPool).where(CreditPool.customer_id == customer_id).order_by(CreditPool.key)
        )
    )
