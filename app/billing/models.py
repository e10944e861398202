"""What import and reconciliation keep: where an import got to, and each run's differences."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import Base, UTCDateTime, value_enum


class ImportCursor(Base):
    """How far `flask stripe import` got in one object type's list: a re-run after an
    interruption goes on from here. Deleted when an import finishes, so the next one reads all."""

    __tablename__ = "import_cursors"

    id: Mapped[int] = mapped_column(primary_key=True)
    object_type: Mapped[str] = mapped_column(String(64), unique=True)
    # The last object committed (Stripe's `starting_after`); None before the first page.
    last_id: Mapped[str | None] = mapped_column(String(255))
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RunStatus(StrEnum):
    """Where a reconciliation run ended."""

    RUNNING = "running"
    # Nothing differed: the mirror was Stripe's.
    CLEAN = "clean"
    # Differences were found and each was repaired.
    REPAIRED = "repaired"
    # Stripe did not answer for some objects: the next run starts from the same cursor.
    FAILED = "failed"


class ReconciliationRun(Base):
    """One comparison of the mirror with Stripe (`flask stripe reconcile`, or the nightly job)."""

    __tablename__ = "reconciliation_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[RunStatus] = mapped_column(value_enum(RunStatus, "run_status"))
    # Stripe's events up to this creation time (a Unix timestamp) were compared; the next run
    # reads the events after the cursor of the last run that was not FAILED.
    events_cursor: Mapped[int | None] = mapped_column(Integer)
    full_sweep: Mapped[bool] = mapped_column(Boolean, default=False)
    objects_checked: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)

    differences: Mapped[list[Difference]] = relationship(
        back_populates="run", order_by="Difference.id"
    )


class Difference(Base):
    """One field where the mirror was not what Stripe has, and when it was made so."""

    __tablename__ = "reconciliation_differences"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("reconciliation_runs.id"), index=True)
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str] = mapped_column(String(255), index=True)
    field: Mapped[str] = mapped_column(String(128))
    tollgate_value: Mapped[str | None] = mapped_column(Text)
    stripe_value: Mapped[str | None] = mapped_column(Text)
    # When the mirror was repaired; None for what is only reported (usage Stripe counted beyond
    # what Tollgate sent is never taken back).
    repaired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The same object and field differed in the run before: something keeps undoing the repair.
    recurring: Mapped[bool] = mapped_column(Boolean, default=False)

    run: Mapped[ReconciliationRun] = relationship(back_populates="differences")


class RevenueMovement(StrEnum):
    """How a customer's recurring revenue moved, the way ChartMogul and Baremetrics name it."""

    NEW = "new"
    EXPANSION = "expansion"
    CONTRACTION = "contraction"
    CHURN = "churn"
    REACTIVATION = "reactivation"


class RevenueChange(Base):
    """A change in one customer's monthly recurring revenue, recorded when the sync path saw it
    (or rebuilt from an imported account's invoices): the history the revenue page draws."""

    __tablename__ = "revenue_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    currency: Mapped[str] = mapped_column(String(3))
    mrr_before: Mapped[int] = mapped_column(BigInteger)
    mrr_after: Mapped[int] = mapped_column(BigInteger)
    movement: Mapped[RevenueMovement] = mapped_column(
        value_enum(RevenueMovement, "revenue_movement")
    )
    # "sync" when seen happening; "invoices" when rebuilt from an import's invoices.
    source: Mapped[str] = mapped_column(String(16))


class RevenueSnapshot(Base):
    """Recurring revenue per plan at the start of a day, taken by the worker: the figures as
    they stood, kept even when the mirror later changes."""

    __tablename__ = "revenue_snapshots"
    __table_args__ = (UniqueConstraint("day", "plan_key", "currency"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, index=True)
    plan_key: Mapped[str] = mapped_column(String(64))
    tier: Mapped[str | None] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    # Active and past-due subscriptions (past due counted and also shown apart).
    mrr: Mapped[int] = mapped_column(BigInteger)
    past_due_mrr: Mapped[int] = mapped_column(BigInteger)
    subscriptions: Mapped[int] = mapped_column(Integer)
    # Trials: what they would bring if they all converted.
    trialing: Mapped[int] = mapped_column(Integer)
    trial_pipeline: Mapped[int] = mapped_column(BigInteger)


class BillingPeriod(Base):
    """One billing period of a customer's subscription, as the sync path last saw it while it
    ran: its plan and what the subscription bills for it. Margins set it against what the
    period's usage cost (usage_costs, by the same period key), and the margin floor keeps here
    what it has billed for the period so far."""

    __tablename__ = "billing_periods"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    # As the usage counters name it (app/entitlements/access.py name_period).
    period_key: Mapped[str] = mapped_column(String(255), unique=True)
    stripe_subscription_id: Mapped[str] = mapped_column(String(255))
    plan_key: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    trialing: Mapped[bool] = mapped_column(Boolean)
    # The subscription's recurring charge for the period, net of discounts, in minor units.
    recurring_amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # Minor units sent through the margin floor's meter for this period, and when the operator
    # was told that the period fell below its floor.
    floor_billed: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    floor_alerted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
