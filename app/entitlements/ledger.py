"""The ledger: every credit movement is an entry against a lot, moving the lot and pool with it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, insert, select, update
from sqlalchemy.orm.util import identity_key

from app.accounts.models import Customer
from app.clock import now
from app.entitlements.models import CreditLedgerEntry, CreditLot, CreditPool, LedgerKind, LotOrigin
from app.entitlements.sql import insert_rows, one_of, statement_per_dialect
from app.extensions import db


def _customer_rows_for_update(*, skip_locked: bool) -> Select[int]:
    return (
        select(Customer.id)
        .where(one_of(Customer.id, "customer_ids"))
        .order_by(Customer.id)
        .with_for_update(skip_locked=skip_locked)
    )


@statement_per_dialect
def _lock_statement() -> Select[int]:
    return _customer_rows_for_update(skip_locked=False)


@statement_per_dialect
def _lock_free_statement() -> Select[int]:
    return _customer_rows_for_update(skip_locked=True)


def lock_free_customers(customer_ids: Iterable[int]) -> set[int]:
    """PostgreSQL: lock those of the customers' rows that no other transaction holds, without
    waiting for the others; which it locked."""
    ids = sorted(set(customer_ids))
    return set(
        db.session.connection()
        .execute(_lock_free_statement(), {"customer_ids": ids})
        .scalars()
        .all()
    )


@statement_per_dialect
def _lock_by_reference_statement() -> Select[str, int]:
    return (
        select(Customer.reference_id, Customer.id)
        .where(one_of(Customer.reference_id, "reference_ids"))
        .order_by(Customer.id)
        .with_for_update()
    )


def lock_customers_by_reference(reference_ids: Iterable[str]) -> dict[str, int]:
    """Find the customers with these reference ids and hold their rows, as lock_customers()
    does, in one statement; their ids by reference id (unknown ones are left out)."""
    connection = db.session.connection()
    wanted = {"reference_ids": sorted(set(reference_ids))}
    if connection.dialect.name != "sqlite":
        return dict(connection.execute(_lock_by_reference_statement(), wanted).all())
    # SQLite: the whole database's write lock first, as lock_customers() explains.
    found = dict(connection.execute(_lock_by_reference_statement(), wanted).all())
    lock_customers(found.values())
    return found


def lock_customers(customer_ids: Iterable[int]) -> None:
    """Hold the customers' rows for the transaction, so their credits and usage move one writer
    at a time; a batch takes each of its customers' locks once, in one statement."""
    ids = sorted(set(customer_ids))
    connection = db.session.connection()
    if connection.dialect.name != "sqlite":
        # In id order, so two batches that share customers cannot deadlock.
        connection.execute(_lock_statement(), {"customer_ids": ids})
        return
    # SQLite has no row locks: a writer holds the whole database. Take that lock up front, so the
    # writer queues on the busy timeout here instead of failing later on a stale read snapshot.
    # pysqlite opens a transaction only before its first write, so a transaction that is already
    # open holds the write lock (or reads a snapshot that the update below upgrades, as before).
    if connection.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
        connection.execute(update(Customer).where(Customer.id.in_(ids)).values(id=Customer.id))
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


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


@dataclass
class LotBalance:
    """What is left of a lot, as the write path and simulations work with it in memory."""

    id: int
    pool_id: int
    pool_key: str
    denomination: str
    customer_id: int
    plan_key: str | None
    remaining: int
    expires_at: datetime | None


@dataclass(frozen=True)
class Movement:
    """One ledger entry to append, moving its lot and pool by ``amount``."""

    lot_id: int
    pool_id: int
    plan_key: str | None
    kind: LedgerKind
    amount: int
    source: str

    @classmethod
    def of(
        cls, lot: LotBalance | CreditLot, kind: LedgerKind, amount: int, source: str
    ) -> Movement:
        """A movement of ``lot``."""
        return cls(lot.id, lot.pool_id, lot.plan_key, kind, amount, source)


def write_movements(movements: Sequence[Movement]) -> None:
    """Append the entries and move the lots and pools, a statement per table for all of them."""
    if not movements:
        return
    db.session.flush()
    connection = db.session.connection()
    insert_rows(
        insert(CreditLedgerEntry),
        [
            {
                "pool_id": move.pool_id,
                "lot_id": move.lot_id,
                "kind": move.kind,
                "amount": move.amount,
                "source": move.source,
                "plan_key": move.plan_key,
                # The one clock: in sandbox mode the ledger moves with the sandbox's time.
                "created_at": now(),
            }
            for move in movements
        ],
    )
    by_lot: dict[int, int] = defaultdict(int)
    by_pool: dict[int, int] = defaultdict(int)
    for move in movements:
        by_lot[move.lot_id] += move.amount
        by_pool[move.pool_id] += move.amount
    # In SQL, so a balance read before the lock was taken can never be written back.
    changes: list[tuple[type[CreditLot | CreditPool], Any, dict[int, int]]] = [
        (CreditLot, CreditLot.remaining, by_lot),
        (CreditPool, CreditPool.balance, by_pool),
    ]
    for model, column, totals in changes:
        connection.execute(
            update(model)
            .where(model.id == bindparam("row_id"))
            .values({column: column + bindparam("delta")}),
            [{"row_id": row_id, "delta": delta} for row_id, delta in totals.items()],
        )
        for row_id in totals:
            loaded = db.session.identity_map.get(identity_key(model, row_id))
            if loaded is not None:
                db.session.expire(loaded, [column.key])


def move(lot: CreditLot, kind: LedgerKind, amount: int, source: str) -> bool:
    """Append an entry and move the lot and pool by ``amount``; False if ``source`` moved before."""
    already = db.session.scalar(
        select(CreditLedgerEntry.id).where(
            CreditLedgerEntry.pool_id == lot.pool_id, CreditLedgerEntry.source == source
        )
    )
    if already is not None:
        return False
    write_movements([Movement.of(lot, kind, amount, source)])
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
    stripe_subscription_id: str | None = None,
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
        stripe_subscription_id=stripe_subscription_id,
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


@statement_per_dialect
def _lots_statement() -> Select[*tuple[Any, ...]]:
    return (
        select(
            CreditLot.id,
            CreditLot.pool_id,
            CreditPool.key,
            CreditPool.denomination,
            CreditPool.customer_id,
            CreditLot.plan_key,
            CreditLot.remaining,
            CreditLot.expires_at,
        )
        .join(CreditPool, CreditLot.pool_id == CreditPool.id)
        .where(one_of(CreditPool.customer_id, "customer_ids"), CreditLot.remaining > 0)
        # Burn order, as burn_order() gives it.
        .order_by(CreditLot.expires_at.asc().nulls_last(), CreditLot.granted_at, CreditLot.id)
    )


def lots_with_credits(customer_ids: Sequence[int]) -> list[LotBalance]:
    """The customers' lots that hold credits, in burn order, expired ones included."""
    rows = db.session.connection().execute(_lots_statement(), {"customer_ids": list(customer_ids)})
    return [LotBalance(*row) for row in rows]


def is_open(lot: LotBalance, at: datetime) -> bool:
    """Whether the lot's credits may still be spent at ``at``."""
    return lot.expires_at is None or lot.expires_at > at


def expiry(lot: LotBalance | CreditLot) -> Movement:
    """What expiring the rest of a lot moves (its source makes this happen once per lot)."""
    return Movement.of(lot, LedgerKind.EXPIRE, -lot.remaining, f"expire:{lot.id}")


def expire_lot(lot: CreditLot) -> bool:
    """Expire what is left of a lot, once; whether anything moved."""
    if lot.remaining <= 0:
        return False
    entry = expiry(lot)
    return move(lot, entry.kind, entry.amount, entry.source)


def expire_due(customer_id: int, at: datetime) -> None:
    """Expire the customer's lots that are past their date: done by the next write, not reads."""
    if not any(not is_open(lot, at) for lot in lots_with_credits([customer_id])):
        return
    lock_customers([customer_id])
    due = [lot for lot in lots_with_credits([customer_id]) if not is_open(lot, at)]
    write_movements([expiry(lot) for lot in due])
