"""Users (people who log in) and customers (who Tollgate bills and entitles)."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime
from enum import StrEnum

from flask_login import UserMixin
from sqlalchemy import Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import Base, UTCDateTime, value_enum


def utcnow() -> datetime:
    """The wall-clock time in UTC, for row timestamps."""
    return datetime.now(UTC)


class Customer(Base):
    """Whoever holds a subscription: a self-serve sign-up or a customer of the operator's API."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The operator's own id for the customer; generated for self-serve sign-ups.
    reference_id: Mapped[str] = mapped_column(String(255), unique=True)
    # None for a customer imported from a Stripe account that has no email for it.
    email: Mapped[str | None] = mapped_column(String(320))
    first_name: Mapped[str | None] = mapped_column(String(120))
    last_name: Mapped[str | None] = mapped_column(String(120))
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    # The country of the customer's address in Stripe, for the geography of revenue.
    country: Mapped[str | None] = mapped_column(String(2))
    # When `flask stripe import` adopted it from Stripe (its reference id is then its Stripe
    # id); such a customer is claimed by invitation (invitations.py).
    imported_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The default card, as far as the back office needs it: a card that expires before the
    # next renewal puts the account at risk. Never the number.
    card_brand: Mapped[str | None] = mapped_column(String(32))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    card_expires_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User | None] = relationship(back_populates="customer")


class Role(StrEnum):
    """What a user may see: its own account, or also the operator's back office (/admin)."""

    CUSTOMER = "customer"
    OPERATOR = "operator"


def new_session_token() -> str:
    """A random token that a user's sessions carry (see ``User.get_id``)."""
    return secrets.token_hex(16)


class User(UserMixin, Base):
    """A person who logs in to Tollgate's pages with an email and a password."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    session_token: Mapped[str] = mapped_column(String(64), default=new_session_token)
    role: Mapped[Role] = mapped_column(value_enum(Role, "user_role"), default=Role.CUSTOMER)

    customer: Mapped[Customer] = relationship(back_populates="user")

    def get_id(self) -> str:
        """What a session keeps of its user: the id and the user's current session token."""
        return f"{self.id}:{self.session_token}"

    @property
    def is_operator(self) -> bool:
        """Whether the user may use the back office."""
        return self.role is Role.OPERATOR

    def end_sessions(self) -> None:
        """End every session of this user, on every device (log-out, "sign out everywhere"):
        each names the old token, which no longer matches."""
        self.session_token = new_session_token()
