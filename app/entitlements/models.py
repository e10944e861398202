"""Credit pools and their append-only ledger."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.accounts.models import utcnow
from app.extensions import Base, UTCDateTime, value_enum


class LedgerKind(StrEnum):
    """Why credits moved."""

    GRANT = "grant"
    DEDUCT = "deduct"
    ROLLOVER = "rollover"
    EXPIRE = "expire"
    CLAWBACK = "clawback"


class CreditPool(Base):
    """A customer's balance of one denomination, fed by grants and drawn down by usage."""

    __tablename__ = "credit_pools"
    __table_args__ = (UniqueConstraint("customer_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    key: Mapped[str] = mapped_column(String(64))
    denomination: Mapped[str] = mapped_column(String(64))
    # Always the sum of the pool's ledger entries; kept here so a check reads one row.
    balance: Mapped[int] = mapped_column(BigInteger, default=0)

    entries: Mapped[list[CreditLedgerEntry]] = relationship(
        back_populates="pool", order_by="CreditLedgerEntry.id"
    )


class CreditLedgerEntry(Base):
    """One movement of credits; never updated or deleted."""

    __tablename__ = "credit_ledger"
    # The source names what caused the movement (a paid period, a usage event), so the same
    # cause can never move credits twice.
    __table_args__ = (UniqueConstraint("pool_id", "source"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("credit_pools.id"), index=True)
    kind: Mapped[LedgerKind] = mapped_column(value_enum(LedgerKind, "ledger_kind"))
    amount: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(255))
    plan_key: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    pool: Mapped[CreditPool] = relationship(back_populates="entries")
