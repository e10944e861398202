"""Entitlement checks and pre-flight simulations: what using a feature would do, unwritten."""

from __future__ import annotations

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
    covering_pools,
    period_usage,
)
from app.entitlements.errors import InvalidUsage
from app.entitlements.ledger import burn_order, expire_due
from app.entitlements.models import CreditLot, CreditPool

# Larger counts are a client bug (a byte count sent as tokens), not usage.
MAX_UNITS = 1_000_000_000


@dataclass(frozen=True)
class CreditDraw:
    """Credits one event takes (or would take) from one pool."""

    pool_key: str
    denomination: str
    amount: int


@dataclass(frozen=True)
class Evaluation:
    """A feature's standing and how ``units`` more of it would be paid for, computed not written."""

    feature_key: str
    access: Access
    units: int
    used: int
    pools: list[CreditPool]
    lots: list[CreditLot]
    from_included: int
    from_lots: list[tuple[CreditLot, int]]
    overage: int

    @property
    def allowance(self) -> MeteredAllowance | None:
        """The plan's allowance of a metered feature; None for an on/off feature."""
        grant = self.access.grant
        return grant if isinstance(grant, MeteredAllowance) else None

    @property
    def limit(self) -> int | None:
        """The hard limit per period, if any."""
        return self.allowance.limit if self.allowance else None

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

    @property
    def credit_balance(self) -> int:
        """Unexpired credits of the pools that cover the feature."""
        return sum(lot.remaining for lot in self.lots)

    def credit_draws(self) -> list[CreditDraw]:
        """What the units take from each pool, in pool order."""
        taken = {pool.id: 0 for pool in self.pools}
        for lot, amount in self.from_lots:
            taken[lot.pool_id] += amount
        return [
            CreditDraw(pool.key, pool.denomination, taken[pool.id])
            for pool in self.pools
            if taken[pool.id]
        ]


def validate_units(units: int) -> int:
    """The units of one event: a whole number from 1 to a billion."""
    if isinstance(units, bool) or not isinstance(units, int) or not 0 < units <= MAX_UNITS:
        raise InvalidUsage(
            f"Units must be a whole number from 1 to {MAX_UNITS:,}.", code="invalid_units"
        )
    return units


def evaluate(customer: Customer, feature_key: str, units: int, at: datetime) -> Evaluation:
    """How ``units`` would be covered now: included units first, then lots, then overage."""
    validate_units(units)
    standing = access(customer, feature_key, at)
    allowance = standing.grant if isinstance(standing.grant, MeteredAllowance) else None
    used = period_usage(customer.id, feature_key, standing.period_key) if allowance else 0
    pools = covering_pools(customer.id, feature_key)
    lots = burn_order([pool.id for pool in pools], at) if pools else []
    if allowance is None:
        return Evaluation(feature_key, standing, units, used, pools, lots, 0, [], 0)
    from_included = units if allowance.unlimited else min(units, max(allowance.included - used, 0))
    rest = units - from_included
    from_lots: list[tuple[CreditLot, int]] = []
    for lot in lots:
        if rest == 0:
            break
        take = min(rest, lot.remaining)
        from_lots.append((lot, take))
        rest -= take
    return Evaluation(
        feature_key, standing, units, used, pools, lots, from_included, from_lots, rest
    )


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
    """Whether ``units`` of ``feature_key`` are allowed now; expires lots that are past due."""
    at = now()
    expire_due(customer.id, at)
    evaluation = evaluate(customer, feature_key, units, at)
    allowance = evaluation.allowance
    limit = evaluation.limit
    subscription = evaluation.access.subscription
    return EntitlementCheck(
        feature_key=feature_key,
        is_allowed=evaluation.refusal is None,
        reason=evaluation.refusal,
        subscription_status=subscription.status.value if subscription else None,
        used=evaluation.used,
        limit=limit,
        remaining=max(limit - evaluation.used, 0) if limit is not None else None,
        included=allowance.included if allowance else 0,
        unlimited=bool(allowance and allowance.unlimited),
        period_end=evaluation.access.period_end,
        credit_balance=evaluation.credit_balance,
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
    evaluation = evaluate(customer, feature_key, units, now())
    return Simulation(
        feature_key=feature_key,
        units=units,
        is_allowed=evaluation.refusal is None,
        reason=evaluation.refusal,
        would_exceed_limit=evaluation.would_exceed_limit,
        from_included=evaluation.from_included,
        from_credits=evaluation.credit_draws(),
        overage_units=evaluation.overage,
        overage_billable=evaluation.overage_billable,
    )
