"""What the pricing page shows: one card per tier for the chosen billing interval."""

from __future__ import annotations

from dataclasses import dataclass

from app.catalog import Catalog, Plan
from app.catalog.wording import billing_line, credit_lines, feature_lines, floor_line, trial_line
from app.money import format_money

INTERVALS = ("month", "year")


@dataclass(frozen=True)
class PlanCard:
    """One plan as the pricing page presents it."""

    plan: Plan
    amount: str
    per: str
    billing: str
    trial: str | None
    features: list[str]
    credits: list[str]
    # What the plan's margin floor bills past it, for plans that bill it.
    floor: str | None
    saving_percent: int | None


def plan_cards(catalog: Catalog, interval: str) -> list[PlanCard]:
    """A card per tier, lowest first, preferring the plan billed at ``interval``.

    A tier without a plan at that interval (a free plan, a monthly-only enterprise plan) still
    shows its other plan, so the buyer sees every tier whichever way the toggle stands.
    """
    cards = []
    for tier in catalog.tiers:
        plans = [plan for plan in catalog.plans.values() if plan.tier == tier]
        if not plans:
            continue
        chosen = next((plan for plan in plans if plan.interval == interval), plans[0])
        cards.append(
            PlanCard(
                plan=chosen,
                amount="Free" if chosen.is_free else format_money(chosen.price, chosen.currency),
                per="" if chosen.is_free else f"/ {chosen.interval}",
                billing=billing_line(chosen),
                trial=trial_line(chosen),
                features=feature_lines(catalog, chosen),
                credits=credit_lines(chosen),
                floor=floor_line(chosen),
                saving_percent=_yearly_saving(chosen, plans),
            )
        )
    return cards


def _yearly_saving(plan: Plan, tier_plans: list[Plan]) -> int | None:
    """How much cheaper a yearly plan is than twelve months of its tier's monthly plan."""
    monthly = next((p for p in tier_plans if p.interval == "month" and p.price), None)
    if plan.interval != "year" or monthly is None or plan.currency != monthly.currency:
        return None
    saving = round(100 * (1 - plan.price / (12 * monthly.price)))
    return saving if saving > 0 else None
