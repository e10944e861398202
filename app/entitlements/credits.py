"""Credit grants: plan credits per paid period and their rollover, top-ups, clawback, purchases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from app.catalog import CreditGrant, Plan
from app.clock import now
from app.entitlements.access import name_period
from app.entitlements.ledger import (
    burn_order,
    expire_due,
    expire_lot,
    grant_lot,
    lock_customers,
    move,
    pool_for,
)
from app.entitlements.models import CreditLot, CreditPool, LedgerKind, LotOrigin
from app.extensions import db


@dataclass(frozen=True)
class Period:
    """A billing period of a subscription, as Stripe set it."""

    stripe_subscription_id: str
    start: datetime
    end: datetime

    @property
    def key(self) -> str:
        """Names the period uniquely: grants, rollovers and meter identifiers are keyed by it."""
        return name_period(self.stripe_subscription_id, self.start)


def plan_lot_expiry(grant: CreditGrant, period: Period) -> datetime | None:
    """When credits granted for ``period`` expire under the grant's rollover policy."""
    if grant.rollover == "none":
        return period.end
    if grant.rollover == "expire" and grant.expire_after_periods is not None:
        return period.start + grant.expire_after_periods * (period.end - period.start)
    return None


def grant_plan_credits(customer_id: int, plan: Plan, period: Period) -> None:
    """Grant the plan's credits for one paid period, after rolling over what is left; once.

    What rolls over is what is left of the same subscription's earlier lots, so the grant does
    not depend on whether another subscription's news arrived before or after it: a new
    subscription starts with its own grant only, never with an ended one's leftovers.
    """
    lock_customers([customer_id])
    expire_due(customer_id, period.start)
    for grant in plan.credits:
        pool = pool_for(customer_id, grant.pool, grant.denomination)
        source = f"plan:{period.key}"
        already = db.session.scalar(
            select(CreditLot.id).where(CreditLot.pool_id == pool.id, CreditLot.source == source)
        )
        if already is not None:
            continue
        _roll_over(pool, grant, plan.key, period)
        grant_lot(
            pool,
            origin=LotOrigin.PLAN,
            amount=grant.amount,
            source=source,
            plan_key=plan.key,
            granted_at=period.start,
            expires_at=plan_lot_expiry(grant, period),
            stripe_subscription_id=period.stripe_subscription_id,
        )


def _roll_over(pool: CreditPool, grant: CreditGrant, plan_key: str, period: Period) -> None:
    """Apply the rollover policy to what is left of earlier plan lots, as ``period`` opens."""
    if grant.rollover == "expire":
        return  # each grant keeps its own expiry date
    earlier = [
        lot
        for lot in burn_order([pool.id], period.start)
        if lot.origin is LotOrigin.PLAN
        and lot.stripe_subscription_id == period.stripe_subscription_id
        and lot.granted_at < period.start
    ]
    if grant.rollover == "none":
        for lot in earlier:
            expire_lot(lot)
        return
    left = sum(lot.remaining for lot in earlier)
    excess = left - grant.rollover_cap if grant.rollover == "capped" and grant.rollover_cap else 0
    for lot in earlier:
        cut = min(max(excess, 0), lot.remaining)
        if cut:
            move(lot, LedgerKind.EXPIRE, -cut, f"rollover-cap:{period.key}:{lot.id}")
            excess -= cut
    carried = [lot for lot in earlier if lot.remaining > 0]
    if not carried:
        return
    # The carried credits become one lot of the new period, so the ledger shows the rollover.
    amount = sum(lot.remaining for lot in carried)
    for lot in carried:
        move(lot, LedgerKind.ROLLOVER, -lot.remaining, f"rollover:{period.key}:{lot.id}")
    grant_lot(
        pool,
        origin=LotOrigin.PLAN,
        amount=amount,
        source=f"rollover:{period.key}",
        plan_key=plan_key,
        granted_at=min(lot.granted_at for lot in carried),
        expires_at=None,
        stripe_subscription_id=period.stripe_subscription_id,
        kind=LedgerKind.ROLLOVER,
    )


def top_up_plan_credits(customer_id: int, old_plan: Plan, new_plan: Plan, period: Period) -> None:
    """On an upgrade, grant each pool's per-period difference for the current period; once."""
    lock_customers([customer_id])
    old_amounts = {grant.pool: grant.amount for grant in old_plan.credits}
    for grant in new_plan.credits:
        difference = grant.amount - old_amounts.get(grant.pool, 0)
        if difference > 0:
            grant_lot(
                pool_for(customer_id, grant.pool, grant.denomination),
                origin=LotOrigin.PLAN,
                amount=difference,
                source=f"topup:{period.key}:{old_plan.key}:{new_plan.key}",
                plan_key=new_plan.key,
                granted_at=now(),
                expires_at=plan_lot_expiry(grant, period),
                stripe_subscription_id=period.stripe_subscription_id,
            )


def end_plan_credits(customer_id: int, stripe_subscription_id: str, *, clawback: bool) -> int:
    """Take what is left of an ended subscription's plan credits; the total taken.

    ``clawback``: the subscription was cancelled before its period ended, so its credits are
    clawed back; otherwise they expire with the last period. Purchased and promotional credits
    belong to no subscription and stay. Once per lot, however often the end is synced.
    """
    lock_customers([customer_id])
    lots = db.session.scalars(
        select(CreditLot)
        .join(CreditPool)
        .where(
            CreditPool.customer_id == customer_id,
            CreditLot.origin == LotOrigin.PLAN,
            CreditLot.stripe_subscription_id == stripe_subscription_id,
            CreditLot.remaining > 0,
        )
        .order_by(CreditLot.id)
        .execution_options(populate_existing=True)
    )
    taken = 0
    for lot in lots:
        remaining = lot.remaining
        if clawback:
            moved = move(lot, LedgerKind.CLAWBACK, -remaining, f"clawback:{lot.id}")
        else:
            moved = expire_lot(lot)
        taken += remaining if moved else 0
    return taken


def grant_credits(
    customer_id: int,
    *,
    pool_key: str,
    denomination: str,
    amount: int,
    origin: LotOrigin,
    source: str,
    expires_at: datetime | None = None,
) -> bool:
    """Add purchased or promotional credits once per ``source``; False if granted before."""
    lock_customers([customer_id])
    lot = grant_lot(
        pool_for(customer_id, pool_key, denomination),
        origin=origin,
        amount=amount,
        source=source,
        plan_key=None,
        granted_at=now(),
        expires_at=expires_at,
    )
    return lot is not None


def balances(customer_id: int) -> list[CreditPool]:
    """The customer's pools, by key."""
    return list(
        db.session.scalars(
            select(CreditPool).where(CreditPool.customer_id == customer_id).order_by(CreditPool.key)
        )
    )
