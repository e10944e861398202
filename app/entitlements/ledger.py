"""The ledger: every credit movement is an entry against a lot, moving the lot and pool with it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, update

from app.accounts.models import Customer
from app.entitlements.models import CreditLedgerEntry, CreditLot, CreditPool, LedgerKind, LotOrigin
from app.extensions import db


def lock_customer_row(customer_id: int) -> None:
    """Hold the customer's row for the transaction, so its credits move one writer at a time."""
    if db.session.get_bind().dialect.name == "sqlite":
        # SQLite has no row locks and ignores FOR UPDATE; a write takes its database write lock
        # up front, so the writer waits here rather than failing later on a stale snapshot.
        db.session.execute(
            update(Customer).where(Customer.id == customer_id).values(id=Customer.id)
        )
    else:
        db.session.execute(select(Customer.id).where(Customer.id == customer_id).with_for_update())


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


def move(lot: CreditLot, kind: LedgerKind, amount: int, source: str) -> bool:
    """Append an entry and move the lot and pool by ``amount``; False if ``source`` moved before."""
    already = db.session.scalar(
        select(CreditLedgerEntry.id).where(
            CreditLedgerEntry.pool_id == lot.pool_id, CreditLedgerEntry.source == source
        )
    )
    if already is not None:
        return False
    db.session.add(
        CreditLedgerEntry(
            pool_id=lot.pool_id,
            lot_id=lot.id,
            kind=kind,
            amount=amount,
            source=source,
            plan_key=lot.plan_key,
        )
    )
    lot.remaining += amount
    # In SQL, so a balance read before the lock was taken can never be written back.
    db.session.execute(
        update(CreditPool)
        .where(CreditPool.id == lot.pool_id)
        .values(balance=CreditPool.balance + amount)
        .execution_options(synchronize_session=False)
    )
    db.session.expire(lot.pool, ["balance"])
    db.session.flush()
    return True


def grant_lot(
    pool: CreditPool,
    *,
    origin: LotOrigin,
    amount: int,
    source: str,
    plan_key: str | None,
    granted_at: datetime,
    expires_at: datetime | None,
    kind: LedgerKind = LedgerKind.GRANT,
) -> CreditLot | None:
    """Add a lot of ``amount`` credits; None when ``source`` granted into this pool before."""
    exists = db.session.scalar(
        select(CreditLot.id).where(CreditLot.pool_id == pool.id, CreditLot.source == source)
    )
    if exists is not None:
        return None
    lot = CreditLot(
        pool=pool,
        origin=origin,
        plan_key=plan_key,
        source=source,
        amount=amount,
        remaining=0,
        granted_at=granted_at,
        expires_at=expires_at,
    )
    db.session.add(lot)
    db.session.flush()
    move(lot, kind, amount, source)
    return lot


def burn_order(pool_ids: Iterable[int], at: datetime) -> list[CreditLot]:
    """Lots with credits left and not expired at ``at``: soonest expiry first, then oldest grant."""
    return list(
        db.session.scalars(
            select(CreditLot)
            .where(
                CreditLot.pool_id.in_(list(pool_ids)),
                CreditLot.remaining > 0,
                (CreditLot.expires_at.is_(None)) | (CreditLot.expires_at > at),
            )
            .order_by(CreditLot.expires_at.asc().nulls_last(), CreditLot.granted_at, CreditLot.id)
            .execution_options(populate_existing=True)
        )
    )


def due_lots(customer_id: int, at: datetime) -> list[CreditLot]:
    """The customer's lots that expired by ``at`` and still hold credits."""
    return list(
        db.session.scalars(
            select(CreditLot)
            .join(CreditPool)
            .where(
                CreditPool.customer_id == customer_id,
                CreditLot.remaining > 0,
                CreditLot.expires_at <= at,
            )
            .order_by(CreditLot.id)
            .execution_options(populate_existing=True)
        )
    )


def expire_lot(lot: CreditLot) -> None:
    """Expire what is left of a lot (its source makes this happen once per lot)."""
    if lot.remaining > 0:
        move(lot, LedgerKind.EXPIRE, -lot.remaining, f"expire:{lot.id}")


def expire_due(customer_id: int, at: datetime) -> None:
    """Expire the customer's lots that are past their date: done lazily, when credits are read."""
    if not due_lots(customer_id, at):
        return
    lock_customer_row(customer_id)
    for lot in due_lots(customer_id, at):
        expire_lot(lot)
