"""The log of Stripe events received, so a repeat is recognised and a failure is kept."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.accounts.models import utcnow
from app.extensions import Base, UTCDateTime


class StripeEvent(Base):
    """One Stripe event by its id: when it came, whether it was processed, and the last error."""

    __tablename__ = "stripe_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(128), index=True)
    # The object the event is about: a retry fetches it from Stripe as it is then.
    object_id: Mapped[str | None] = mapped_column(String(255))
    # The Stripe customer the object belongs to, so a customer's page lists its events.
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), index=True)
    stripe_created: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # When the worker tries the event again if it is still unprocessed: set on arrival (a
    # delivery lost with its process) and after each failure; none once processed or dead.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # Set after the last attempt the worker makes (app/webhooks/processing.py MAX_ATTEMPTS).
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
