"""Entitlement checks and pre-flight simulations: what using a feature would do, unwritten."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from app.accounts.models import Customer
from app.catalog import MeteredAllowance
from app.clock import now
from app.entitlements.access import (
    INSUFFICIENT_CREDITS,
    LIMIT_EXCEEDED,
    Access,
    access,
    covering_pool_keys,
    feature_definition,
    judge_access,
    period_usage,
)
from app.entitlements.errors import InvalidUsage
from app.entitlements.fastpath.check_read import read_check_row
from app.entitlements.ledger import LotBalance, is_open, lots_with_credits

# Larger counts are a client bug (a byte count sent as tokens), not usage.
MAX_UNITS = 1_000_000_000


def whole_number(text: str) -> int | None:
    """``text`` as a whole number written in ASCII digits (at most 19), else None.

    ``str.isdigit`` alone lets through what ``int`` refuses (a superscript two) and numbers of
    any length; a number's range is checked where it is used (units by ``MAX_UNITS``).
    """
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    return int(text)


@dataclass(frozen=True)
class CreditDraw:
    """Credits one event takes (or would take) from one pool."""

    pool_key: str
    denomination: str
    amount: int


# Slotted, not frozen: a batch makes one per event, and a frozen one costs several times as much.
@dataclass(slots=True)
class Cover:
    """How ``units`` more of a feature would be paid for: included units, credits, overage."""

    access: Access
    units: int
    used: int
    from_included: int
    from_credits: int
    overage: int

    @property
    def allowance(self) -> MeteredAllowance | None:
        """The plan's allowance of a metered feature; None for an on/off feature."""
        return self.access.allowance

    @property
    def limit(self) -> int | None:
        """The hard limit per period, if any."""
        allowance = self.access.allowance
        return allowance.limit if allowance else None

    @property
    def would_exceed_limit(self) -> bool:
        """Whether the units would take the period's usage past the hard limit."""
        return self.limit is not None and self.used + self.units > self.limit

    @property
    def overage_billable(self) -> bool:
        """Whether units the allowance and credits leave uncovered are billed."""
        return self.allowance is not None and self.allowance.billable_overage

    @property
    def refusal(self) -> str | None:
        """Why the units may not be used, or None."""
        if self.access.refusal is not None or self.allowance is None:
            return self.access.refusal
        if self.would_exceed_limit:
            return LIMIT_EXCEEDED
        if self.overage and not self.overage_billable:
            return INSUFFICIENT_CREDITS
        return None


def cover(access: Access, used: int, units: int, credits: int) -> Cover:
    """Cover ``units`` with included units first, then ``credits``; the rest is overage."""
    allowance = access.allowance
    if allowance is None:
        return Cover(access, units, used, 0, 0, 0)
    from_included = units if allowance.unlimited else min(units, max(allowance.included - used, 0))
    from_credits = min(units - from_included, credits)
    return Cover(
        access, units, used, from_included, from_credits, units - from_included - from_credits
    )


def burn(lots: Sequence[LotBalance], amount: int) -> list[tuple[LotBalance, int]]:
    """What taking ``amount`` credits takes from each lot, in the lots' (burn) order."""
    taken = []
    for lot in lots:
        if amount == 0:
            break
        take = min(amount, lot.remaining)
        if take:
            taken.append((lot, take))
            amount -= take
    return taken


def credit_draws(taken: Sequence[tuple[LotBalance, int]]) -> list[CreditDraw]:
    """What was taken from each pool, in pool-key order."""
    by_pool: dict[tuple[str, str], int] = {}
    for lot, amount in taken:
        key = (lot.pool_key, lot.denomination)
        by_pool[key] = by_pool.get(key, 0) + amount
    return [
        CreditDraw(pool, denomination, by_pool[pool, denomination])
        for pool, denomination in sorted(by_pool)
    ]


def validate_units(units: int) -> int:
    """The units of one event: a whole number from 1 to a billion."""
    if isinstance(units, bool) or not isinstance(units, int) or not 0 < units <= MAX_UNITS:
        raise InvalidUsage(
            f"Units must be a whole number from 1 to {MAX_UNITS:,}.", code="invalid_units"
        )
    return units


@dataclass(frozen=True)
class EntitlementCheck:
    """May the customer use ``units`` of a feature now, and where its usage stands."""

    feature_key: str
    is_allowed: bool
    reason: str | None
    subscription_status: str | None
    used: int
    limit: int | None
    remaining: int | None
    included: int
    unlimited: bool
    period_end: datetime | None
    credit_balance: int


def check(customer: Customer, feature_key: str, units: int = 1) -> EntitlementCheck:
    """Whether ``units`` of ``feature_key`` are allowed now; reads, never writes."""
    result = _check(customer.id, None, feature_key, units)
    assert result is not None  # the customer exists: it was passed in
    return result


def check_reference(
    reference_id: str, feature_key: str, units: int = 1, key_hash: str | None = None
) -> EntitlementCheck | None:
    """The check for the customer with the operator's reference id; None when there is none.
    With ``key_hash``, the API key is checked in the same query (InvalidApiKey if it is not)."""
    return _check(None, reference_id, feature_key, units, key_hash)


def _check(
    customer_id: int | None,
    reference_id: str | None,
    feature_key: str,
    units: int,
    key_hash: str | None = None,
) -> EntitlementCheck | None:
    """The check for the customer with this id, else this reference id; None when there is none.

    One query reads the customer's subscription, its counter and its unexpired credits; lots
    past their date are not counted (the next write path records their expiry).
    """
    at = now()
    pool_keys = covering_pool_keys(feature_key)
    row = read_check_row(customer_id, reference_id, feature_key, pool_keys, at, key_hash)
    if row is None:
        return None
    validate_units(units)
    feature_definition(feature_key)
    access_now = judge_access(row.subscription, feature_key, at)
    used = row.used if access_now.allowance else 0
    result = cover(access_now, used, units, row.credits)
    allowance = result.allowance
    limit = result.limit
    subscription = result.access.subscription
    return EntitlementCheck(
        feature_key=feature_key,
        is_allowed=result.refusal is None,
        reason=result.refusal,
        subscription_status=subscription.status.value if subscription else None,
        used=result.used,
        limit=limit,
        remaining=max(limit - result.used, 0) if limit is not None else None,
        included=allowance.included if allowance else 0,
        unlimited=bool(allowance and allowance.unlimited),
        period_end=result.access.period_end,
        credit_balance=row.credits,
    )


@dataclass(frozen=True)
class Simulation:
    """What recording ``units`` would do, without recording them."""

    feature_key: str
    units: int
    is_allowed: bool
    reason: str | None
    would_exceed_limit: bool
    from_included: int
    from_credits: list[CreditDraw]
    overage_units: int
    overage_billable: bool


def simulate(customer: Customer, feature_key: str, units: int) -> Simulation:
    """Pre-flight: how recording ``units`` would be covered; writes nothing."""
    validate_units(units)
    at = now()
    access_now = access(customer, feature_key, at)
    used = (
        period_usage(customer.id, feature_key, access_now.period_key) if access_now.allowance else 0
    )
    pool_keys = covering_pool_keys(feature_key)
    lots = [
        lot
        for lot in lots_with_credits([customer.id])
        if lot.pool_key in pool_keys and is_open(lot, at)
    ]
    result = cover(access_now, used, units, sum(lot.remaining for lot in lots))
    return Simulation(
        feature_key=feature_key,
        units=units,
        is_allowed=result.refusal is None,
        reason=result.refusal,
        would_exceed_limit=result.would_exceed_limit,
        from_included=result.from_included,
        from_credits=credit_draws(burn(lots, result.from_credits)),
        overage_units=result.overage,
        overage_billable=result.overage_billable,
    )
