"""Users (people who log in) and customers (who Tollgate bills and entitles)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask_login import UserMixin
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import Base, UTCDateTime


def utcnow() -> datetime:
    """The wall-clock time in UTC, for row timestamps."""
    return datetime.now(UTC)


class Customer(Base):
    """Whoever holds a subscription: a self-serve sign-up or a customer of the operator's API."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The operator's own id for the customer; generated for self-serve sign-ups.
    reference_id: Mapped[str] = mapped_column(String(255), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    first_name: Mapped[str | None] = mapped_column(String(120))
    last_name: Mapped[str | None] = mapped_column(String(120))
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User | None] = relationship(back_populates="customer")


class User(UserMixin, Base):
    """A person who logs in to Tollgate's pages with an email and a password."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    customer: Mapped[Customer] = relationship(back_populates="user")
