"""API keys, stored only as a hash, with the scopes that say what they may do."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from app.accounts.models import utcnow
from app.extensions import Base, UTCDateTime

# Plans, customers, entitlement checks and simulations, credit balances.
READ = "read"
# Usage events, creating customers, starting, changing and cancelling subscriptions.
WRITE = "write"
# What a key created with each scope may do: write includes read, as writing a resource does
# for a Stripe restricted key, so every key can read. The entitlement check relies on it: its
# one query checks that the key is unrevoked, not its scopes (the CHECK constraint below holds
# every key to one of these).
GRANTS = {READ: frozenset({READ}), WRITE: frozenset({READ, WRITE})}
# Stored as OAuth's space-separated scope string: one shared set per stored value.
_STORED = {" ".join(sorted(scopes)): scopes for scopes in GRANTS.values()}
FULL_ACCESS = " ".join(sorted(GRANTS[WRITE]))


def stored_scopes(chosen: Iterable[str]) -> str:
    """The ``scopes`` column of a key created with the ``chosen`` scopes (each in GRANTS)."""
    return " ".join(sorted(frozenset().union(*(GRANTS[scope] for scope in chosen))))


def scopes_of(stored: str) -> frozenset[str]:
    """The scopes of a key from its ``scopes`` column."""
    return _STORED[stored]


class ApiKey(Base):
    """A key the operator's product authenticates with; the key itself is never stored."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("scopes IN (" + ", ".join(f"'{s}'" for s in _STORED) + ")", "scopes"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    # The first characters, shown in listings so a key can be recognised without revealing it.
    prefix: Mapped[str] = mapped_column(String(16))
    # SHA-256 of the whole key: keys are 256 random bits, so a slow hash adds nothing but latency.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Keys made before scopes existed could do everything, and still can.
    scopes: Mapped[str] = mapped_column(String(32), server_default=FULL_ACCESS)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
