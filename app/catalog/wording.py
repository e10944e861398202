"""Plans described in words a buyer understands, for the pricing and account pages."""

from __future__ import annotations

from app.catalog.schema import Catalog, CreditGrant, FeatureDefinition, MeteredAllowance, Plan
from app.money import format_count, format_money, format_percent


def price_line(plan: Plan) -> str:
    """``$49 / month``, or ``Free``."""
    if plan.is_free:
        return "Free"
    return f"{format_money(plan.price, plan.currency)} / {plan.interval}"


def billing_line(plan: Plan) -> str:
    """When the buyer pays."""
    if plan.is_free:
        return "No card needed"
    if plan.billing == "in_arrears":
        return f"Starts at once; invoiced at the end of each {plan.interval}"
    return f"Billed {_per_interval(plan.interval)}, in advance"


def trial_line(plan: Plan) -> str | None:
    """``14-day free trial, no card needed``, or None without a trial."""
    if not plan.trial_days:
        return None
    card = "no card needed" if not plan.trial_requires_card else "cancel any time"
    return f"{plan.trial_days}-day free trial, {card}"


def floor_line(plan: Plan) -> str | None:
    """What a plan that bills its margin floor adds to a period's bill (docs/costs.md): past
    the floor, each unit of cost is billed at 1 / (1 - floor) times itself."""
    if not plan.bills_margin_floor or plan.margin_floor is None:
        return None
    share = format_percent(float(1 - plan.margin_floor), digits=0)
    times = 1 / (1 - plan.margin_floor)
    factor = f"{times:.2f}".rstrip("0").rstrip(".")
    return (
        f"If your usage costs more than {share} of your bill to serve, the excess cost is "
        f"billed {factor} times over"
    )


def feature_lines(catalog: Catalog, plan: Plan) -> list[str]:
    """One sentence per feature the plan grants, in catalog order."""
    lines = []
    for key, definition in catalog.features.items():
        grant = plan.features.get(key)
        if grant is True:
            lines.append(definition.name)
        elif isinstance(grant, MeteredAllowance):
            lines.append(_metered_line(definition, grant, plan, key))
    return lines


def credit_lines(plan: Plan) -> list[str]:
    """One sentence per credit grant: how much, how often, and what happens to the rest."""
    return [
        f"{format_count(credit.amount)} {credit.denomination} of credit every {plan.interval}; "
        f"{_rollover_words(credit, plan.interval)}"
        for credit in plan.credits
    ]


def _metered_line(
    definition: FeatureDefinition, allowance: MeteredAllowance, plan: Plan, key: str
) -> str:
    if allowance.unlimited:
        return f"Unlimited {definition.name}"
    units = definition.units
    parts = []
    if allowance.included:
        parts.append(f"{format_count(allowance.included)} {units} included a {plan.interval}")
    if any(key in credit.features for credit in plan.credits):
        parts.append("drawn from your credits")
    if allowance.overage_price is not None:
        per = allowance.overage_per
        per_words = definition.unit if per == 1 else f"{format_count(per)} {units}"
        price = format_money(allowance.overage_price, plan.currency)
        parts.append(f"then {price} per {per_words}")
    if allowance.limit is not None and allowance.limit != allowance.included:
        parts.append(f"up to {format_count(allowance.limit)} {units} a {plan.interval}")
    return f"{definition.name}: {', '.join(parts)}"


def _rollover_words(credit: CreditGrant, interval: str) -> str:
    if credit.rollover == "full":
        return "unused credit rolls over"
    if credit.rollover == "capped":
        return (
            f"up to {format_count(credit.rollover_cap or 0)} unused {credit.denomination} roll over"
        )
    if credit.rollover == "expire":
        periods = credit.expire_after_periods or 0
        return f"unused credit rolls over and expires after {periods} {interval}s"
    return f"unused credit ends with the {interval}"


def _per_interval(interval: str) -> str:
    return {"month": "monthly", "year": "yearly"}[interval]
