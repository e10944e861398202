"""Local mirrors of Stripe's subscriptions, invoices, charges, refunds and disputes, and of the
billing details customers keep in Stripe's portal; Stripe stays the system of record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, backref, mapped_column, relationship

from app.accounts.models import Customer, utcnow
from app.extensions import Base, UTCDateTime, value_enum


class SubscriptionStatus(StrEnum):
    """Stripe's subscription statuses (API 2025 and later)."""

    INCOMPLETE = "incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired"
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    CANCELED = "canceled"
    UNPAID = "unpaid"
    PAUSED = "paused"


LIVE_STATUSES = frozenset(
    {SubscriptionStatus.TRIALING, SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE}
)
# Stripe never starts these again (unpaid and paused ones can still come back).
ENDED_STATUSES = frozenset({SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE_EXPIRED})


def entitled(
    status: SubscriptionStatus,
    period_start: datetime | None,
    now: datetime,
    past_due_grace: timedelta,
) -> bool:
    """Whether a subscription in ``status`` gets its plan's features at ``now``."""
    if status in (SubscriptionStatus.TRIALING, SubscriptionStatus.ACTIVE):
        return True
    if status is SubscriptionStatus.PAST_DUE and period_start is not None:
        return now < period_start + past_due_grace
    return False


class SubscriptionTerms(Protocol):
    """What judging access needs of a subscription: the ORM row, or the check's read of it."""

    @property
    def stripe_subscription_id(self) -> str: ...
    @property
    def plan_key(self) -> str: ...
    @property
    def status(self) -> SubscriptionStatus: ...
    @property
    def current_period_start(self) -> datetime | None: ...
    @property
    def current_period_end(self) -> datetime | None: ...
    @property
    def is_live(self) -> bool: ...
    def is_entitled(self, now: datetime, past_due_grace: timedelta) -> bool: ...


# Slotted, not frozen: a batch makes one per customer, and a frozen one took three times as long
# (0.9 µs against 0.3). Treat it as a value all the same.
@dataclass(slots=True)
class SubscriptionRead:
    """A subscription row read for judging access, as the hot paths read it: an ORM instance
    would cost them more than their queries do."""

    stripe_subscription_id: str
    plan_key: str
    status: SubscriptionStatus
    current_period_start: datetime | None
    current_period_end: datetime | None

    @property
    def is_live(self) -> bool:
        """As Subscription.is_live."""
        return self.status in LIVE_STATUSES

    def is_entitled(self, now: datetime, past_due_grace: timedelta) -> bool:
        """As Subscription.is_entitled."""
        return entitled(self.status, self.current_period_start, now, past_due_grace)


class Subscription(Base):
    """A customer's Stripe subscription, as last read from Stripe."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_subscription_id: Mapped[str] = mapped_column(String(255), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    plan_key: Mapped[str] = mapped_column(String(64))
    stripe_price_id: Mapped[str] = mapped_column(String(255))
    status: Mapped[SubscriptionStatus] = mapped_column(
        value_enum(SubscriptionStatus, "subscription_status")
    )
    current_period_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    current_period_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    trial_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    # A downgrade or interval switch that a Stripe subscription schedule applies later.
    # What the subscription is worth a month in minor units: each recurring item's price times
    # its quantity, a yearly price over twelve months, net of discounts. Whether it counts as
    # recurring revenue depends on the status (app/billing/revenue.py).
    monthly_amount: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    quantity: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    currency: Mapped[str | None] = mapped_column(String(3))
    scheduled_plan_key: Mapped[str | None] = mapped_column(String(64))
    scheduled_change_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When Stripe created it: lists are newest first by this, whatever order webhooks came in.
    stripe_created: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    customer: Mapped[Customer] = relationship()

    @property
    def is_live(self) -> bool:
        """Not ended: trialing, active or past due (Stripe may still collect)."""
        return self.status in LIVE_STATUSES

    def is_entitled(self, now: datetime, past_due_grace: timedelta) -> bool:
        """Whether the customer gets the plan's features at ``now``."""
        return entitled(self.status, self.current_period_start, now, past_due_grace)

    @property
    def has_ended(self) -> bool:
        """Over for good: cancelled, or never paid for; its plan credits end with it."""
        return self.status in ENDED_STATUSES


# Newest first, as Stripe created them (the local id only breaks ties within a second): every
# list of a customer's subscriptions, and the choice of its current one, go by this.
NEWEST_FIRST = (Subscription.stripe_created.desc(), Subscription.id.desc())


class Invoice(Base):
    """A Stripe invoice of a customer, for the account page and the revenue view."""

    __tablename__ = "invoices"

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_invoice_id: Mapped[str] = mapped_column(String(255), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(32))
    billing_reason: Mapped[str | None] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    amount_due: Mapped[int] = mapped_column(Integer)
    amount_paid: Mapped[int] = mapped_column(Integer)
    hosted_invoice_url: Mapped[str | None] = mapped_column(String(2048))
    invoice_pdf: Mapped[str | None] = mapped_column(String(2048))
    period_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    period_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    # The PaymentIntent of the invoice's payment, which its charges name.
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255), index=True)
    # Dunning: how many times Stripe tried to collect, and when it tries next (none when it
    # has given up or the invoice is paid).
    attempt_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_payment_attempt: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The recurring part of a subscription invoice a month (its non-proration subscription
    # lines over their period's months); None for other invoices. An imported account's
    # revenue history is rebuilt from it.
    monthly_amount: Mapped[int | None] = mapped_column(BigInteger)


class Charge(Base):
    """A payment attempt on a customer's card (Stripe's charge): the back office's revenue,
    refunds, disputes and geography read these."""

    __tablename__ = "charges"

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_charge_id: Mapped[str] = mapped_column(String(255), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    # What the charge paid is found through its PaymentIntent: an invoice names the
    # PaymentIntent of its payment (Invoice.stripe_payment_intent_id), as Stripe's API does.
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    amount_refunded: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(32))
    disputed: Mapped[bool] = mapped_column(Boolean)
    payment_method_type: Mapped[str | None] = mapped_column(String(64))
    card_brand: Mapped[str | None] = mapped_column(String(32))
    card_country: Mapped[str | None] = mapped_column(String(2))
    billing_country: Mapped[str | None] = mapped_column(String(2))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(String(1024))
    created: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Refund(Base):
    """Money given back on a charge."""

    __tablename__ = "refunds"

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_refund_id: Mapped[str] = mapped_column(String(255), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    stripe_charge_id: Mapped[str | None] = mapped_column(String(255), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Dispute(Base):
    """A chargeback the customer's bank opened on a charge, until it is won or lost."""

    __tablename__ = "disputes"

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_dispute_id: Mapped[str] = mapped_column(String(255), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    stripe_charge_id: Mapped[str] = mapped_column(String(255), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(64))
    evidence_due_by: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class BillingAddress(Base):
    """A customer's billing address in Stripe (``customer.address``), which the customer keeps
    in the billing portal; the account page shows it."""

    __tablename__ = "billing_addresses"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), unique=True)
    line1: Mapped[str | None] = mapped_column(String(255))
    line2: Mapped[str | None] = mapped_column(String(255))
    city: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str | None] = mapped_column(String(255))
    postal_code: Mapped[str | None] = mapped_column(String(32))
    country: Mapped[str | None] = mapped_column(String(2))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    # The account page reads ``customer.billing_address`` (accounts/models.py stays unaware).
    customer: Mapped[Customer] = relationship(
        backref=backref("billing_address", uselist=False, cascade="all, delete-orphan")
    )

    @property
    def lines(self) -> list[str]:
        """The address as it is written on an envelope, without the empty parts."""
        town = " ".join(part for part in (self.postal_code, self.city) if part)
        parts = (self.line1, self.line2, town, self.state, self.country)
        return [part for part in parts if part]


class TaxId(Base):
    """One of a customer's tax IDs in Stripe (VAT number, EIN...), printed on its invoices."""

    __tablename__ = "tax_ids"

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_tax_id: Mapped[str] = mapped_column(String(255), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(255))
    country: Mapped[str | None] = mapped_column(String(2))
    # Stripe's check of the number: pending, verified, unverified or unavailable.
    verification_status: Mapped[str | None] = mapped_column(String(32))
    created: Mapped[datetime] = mapped_column(UTCDateTime)

    # The account page reads ``customer.tax_ids``, oldest first.
    customer: Mapped[Customer] = relationship(
        backref=backref("tax_ids", order_by="TaxId.created", cascade="all, delete-orphan")
    )
