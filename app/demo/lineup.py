"""The catalog's plans by the part they play in the demo's story."""

from __future__ import annotations

from dataclasses import dataclass

from app.catalog import Catalog


@dataclass(frozen=True)
class Lineup:
    """The catalog's plans by the part they play in the story."""

    free: str | None
    monthly: tuple[str, ...]  # paid in advance, monthly, lowest tier first
    yearly: dict[str, str]  # a monthly plan's key -> the yearly plan of its tier
    in_arrears: tuple[str, ...]
    trial_without_card: frozenset[str]
    trial_days: dict[str, int]  # paid in advance, with a trial
    margin_floors: tuple[str, ...]  # of the monthly plans, those with a margin floor

    @classmethod
    def of(cls, catalog: Catalog) -> Lineup:
        """The lineup of a catalog."""
        tier_rank = {tier: rank for rank, tier in enumerate(catalog.tiers)}
        plans = sorted(catalog.plans.values(), key=lambda plan: tier_rank[plan.tier])
        free = next((plan.key for plan in plans if plan.is_free), None)
        in_advance = [plan for plan in plans if not plan.is_free and plan.billing == "in_advance"]
        monthly = [plan for plan in in_advance if plan.interval == "month"]
        yearly = {
            month.key: year.key
            for month in monthly
            for year in in_advance
            if year.interval == "year" and year.tier == month.tier
        }
        return cls(
            free=free,
            monthly=tuple(plan.key for plan in monthly),
            yearly=yearly,
            in_arrears=tuple(
                plan.key for plan in plans if not plan.is_free and plan.billing == "in_arrears"
            ),
            trial_without_card=frozenset(
                plan.key for plan in in_advance if plan.trial_days and not plan.trial_requires_card
            ),
            trial_days={plan.key: plan.trial_days for plan in in_advance if plan.trial_days},
            margin_floors=tuple(plan.key for plan in monthly if plan.margin_floor is not None),
        )
