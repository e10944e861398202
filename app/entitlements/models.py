"""Credit pools, their lots and append-only ledger; usage events, the overage outbox, alerts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import now
from app.extensions import Base, UTCDateTime, value_enum


class LedgerKind(StrEnum):
    """Why credits moved."""

    GRANT = "grant"
    DEDUCT = "deduct"
    ROLLOVER = "rollover"
    EXPIRE = "expire"
    CLAWBACK = "clawback"


class LotOrigin(StrEnum):
    """Where a lot of credits came from; only plan credits roll over or are clawed back."""

    PLAN = "plan"
    PURCHASED = "purchased"
    PROMOTIONAL = "promotional"


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
    lots: Mapped[list[CreditLot]] = relationship(back_populates="pool", order_by="CreditLot.id")


class CreditLot(Base):
    """One grant of credits and what is left of it; usage burns lots soonest-expiring first."""

    __tablename__ = "credit_lots"
    __table_args__ = (UniqueConstraint("pool_id", "source"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("credit_pools.id"), index=True)
    origin: Mapped[LotOrigin] = mapped_column(value_enum(LotOrigin, "lot_origin"))
    plan_key: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(255))
    amount: Mapped[int] = mapped_column(BigInteger)
    # Always the sum of the lot's ledger entries.
    remaining: Mapped[int] = mapped_column(BigInteger)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A plan lot belongs to the subscription whose period granted it: it rolls over only into
    # that subscription's next period, and ends when that subscription ends.
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), index=True)

    pool: Mapped[CreditPool] = relationship(back_populates="lots")


class CreditLedgerEntry(Base):
    """One movement of credits; never updated or deleted."""

    __tablename__ = "credit_ledger"
    # The source names what caused the movement (a paid period, a usage event), so the same
    # cause can never move credits twice.
    __table_args__ = (UniqueConstraint("pool_id", "source"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("credit_pools.id"), index=True)
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("credit_lots.id"), index=True)
    kind: Mapped[LedgerKind] = mapped_column(value_enum(LedgerKind, "ledger_kind"))
    amount: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(255))
    plan_key: Mapped[str | None] = mapped_column(String(64))
    # When, by the one clock (the sandbox's in sandbox mode), so a period's burn is measured in
    # the period's own time.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    pool: Mapped[CreditPool] = relationship(back_populates="entries")


class UsageEvent(Base):
    """A usage event as first recorded, with what it drew; its key makes a retry a no-op."""

    __tablename__ = "usage_events"
    __table_args__ = (
        UniqueConstraint("customer_id", "idempotency_key"),
        # A customer's events newest first (the back office's customer page), without a sort.
        Index("ix_usage_events_customer_id_id", "customer_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    event_name: Mapped[str] = mapped_column(String(255))
    feature_key: Mapped[str] = mapped_column(String(64))
    units: Mapped[int] = mapped_column(BigInteger)
    cost_input: Mapped[Any | None] = mapped_column(JSON)
    period_key: Mapped[str] = mapped_column(String(255))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # What recording it answered the first time, answered again to every retry: the values of
    # results.STORED_FIELDS as an array (an object in events that earlier versions recorded).
    result: Mapped[list[Any] | dict[str, Any]] = mapped_column(JSON, default=list)
    # What serving it cost, worked out from cost_input when recorded (app/entitlements/costs.py):
    # billionths of a minor unit of the catalog's currency, None when unpriced; and where the
    # cost came from (None: nothing to price).
    cost_nanos: Mapped[int | None] = mapped_column(BigInteger)
    cost_source: Mapped[str | None] = mapped_column(String(16))


class UsageCost(Base):
    """What a customer's events of a feature and model cost in a period: the sum of their costs,
    kept as they are recorded, so that margins never sum a period's events."""

    __tablename__ = "usage_costs"

    # The period first: margins read a period's costs by its key, joined on the billing
    # periods, and one index serves that and the recording's upsert.
    period_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    feature_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    nanos: Mapped[int] = mapped_column(BigInteger)  # billionths of a minor unit
    events: Mapped[int] = mapped_column(BigInteger)  # events with a cost, priced or not
    unpriced: Mapped[int] = mapped_column(BigInteger)  # of those, the ones no one could price


class UsageCounter(Base):
    """Units of a feature recorded in a period: the sum of its events, kept as they are recorded.

    Checks read this one row instead of summing a period's events, which grow with every event.
    """

    __tablename__ = "usage_counters"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    feature_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    period_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    used: Mapped[int] = mapped_column(BigInteger)


class OverageBatch(Base):
    """One meter event for Stripe: outbox rows of one customer and meter (overage), or an
    in-arrears plan's fee for one period.

    The batch exists (committed) before it is sent, so a retry sends the same identifier and
    Stripe counts it once.
    """

    __tablename__ = "overage_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    identifier: Mapped[str] = mapped_column(String(100), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    event_name: Mapped[str] = mapped_column(String(100))
    units: Mapped[int] = mapped_column(BigInteger)
    # The meter event's timestamp: Stripe bills usage in the period this falls in.
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    forwarded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # A forwarder sending the batch holds it until then (wall-clock time); after, another may
    # take it over, as the first has died.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OverageOutbox(Base):
    """Billable overage of one usage event, written in the event's transaction."""

    __tablename__ = "overage_outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    usage_event_id: Mapped[int] = mapped_column(ForeignKey("usage_events.id"), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    event_name: Mapped[str] = mapped_column(String(100))
    period_key: Mapped[str] = mapped_column(String(255))
    units: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("overage_batches.id"), index=True)

    batch: Mapped[OverageBatch | None] = relationship()


class AlertSubject(StrEnum):
    """What an alert measures."""

    FEATURE = "feature"
    CREDITS = "credits"


class UsageAlert(Base):
    """A threshold (80 or 100 percent) passed once in a period, for a feature or a pool."""

    __tablename__ = "usage_alerts"
    __table_args__ = (UniqueConstraint("customer_id", "period_key", "subject", "key", "threshold"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    period_key: Mapped[str] = mapped_column(String(255))
    subject: Mapped[AlertSubject] = mapped_column(value_enum(AlertSubject, "alert_subject"))
    # The feature key or the pool key.
    key: Mapped[str] = mapped_column(String(64))
    threshold: Mapped[int] = mapped_column(Integer)
    used: Mapped[int] = mapped_column(BigInteger)
    of: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
