"""Load plans.toml, validate it, and explain any mistake by plan and field."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.catalog.schema import Catalog, MeteredAllowance, Plan


class CatalogError(Exception):
    """The catalog cannot be used; the message names the file, the plan and the field."""


def load_catalog(path: str | Path) -> Catalog:
    """Read and validate the catalog at ``path``, raising CatalogError on any mistake."""
    path = Path(path)
    try:
        # Decimals, not binary floats: rates and floors are exact.
        raw = tomllib.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    except FileNotFoundError:
        raise CatalogError(f"{path}: the plan catalog file does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{path}: not valid TOML: {exc}") from None
    return parse_catalog(raw, source=str(path))


def parse_catalog(raw: dict[str, Any], source: str = "plans.toml") -> Catalog:
    """Validate an already-parsed catalog document."""
    plans = raw.get("plans")
    if isinstance(plans, dict):
        # The table key is the plan's key; plans inherit the catalog's currency.
        raw = {
            **raw,
            "plans": {
                key: {"key": key, "currency": raw.get("currency"), **body}
                if isinstance(body, dict)
                else body
                for key, body in plans.items()
            },
        }
    try:
        catalog = Catalog.model_validate(raw)
    except ValidationError as exc:
        raise CatalogError("\n".join(_describe(source, exc))) from None
    problems = [f"{source}: {where}: {what}" for where, what in _consistency_problems(catalog)]
    problems += [f"{source}: {where}: {what}" for where, what in _cost_problems(catalog)]
    if problems:
        raise CatalogError("\n".join(problems))
    return catalog


def _describe(source: str, exc: ValidationError) -> Iterator[str]:
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        # pydantic tries each branch of `bool | MeteredAllowance`; a table that failed as an
        # allowance need not also be told it is not a boolean, and the branch names add nothing.
        if "bool" in loc and isinstance(error["input"], dict):
            continue
        loc = [part for part in loc if part not in ("bool", "MeteredAllowance")]
        if len(loc) >= 2 and loc[0] == "plans":
            where = f"plan '{loc[1]}'" + (f", field '{'.'.join(loc[2:])}'" if loc[2:] else "")
        else:
            where = f"field '{'.'.join(loc)}'"
        yield f"{source}: {where}: {error['msg']}"


def _consistency_problems(catalog: Catalog) -> Iterator[tuple[str, str]]:
    """Mistakes that no single field shows: references between plans, features and tiers."""
    mapped: dict[str, str] = {}
    for plan in catalog.plans.values():
        where = f"plan '{plan.key}'"
        for price_id in plan.stripe_prices:
            if price_id in mapped:
                yield (
                    f"{where}, field 'stripe_prices'",
                    f"{price_id} bills plan '{mapped[price_id]}' already",
                )
            mapped.setdefault(price_id, plan.key)
        if plan.tier not in catalog.tiers:
            yield f"{where}, field 'tier'", f"unknown tier '{plan.tier}' (tiers: {catalog.tiers})"
        if plan.is_free and plan.trial_days:
            yield f"{where}, field 'trial_days'", "a free plan has no trial"
        if plan.is_free and plan.bills_margin_floor:
            yield (
                f"{where}, field 'margin_floor_action'",
                "a free plan has no invoice to bill the margin floor on: use 'alert'",
            )
        for feature_key, grant in plan.features.items():
            yield from _feature_problems(catalog, plan, feature_key, grant)
        pools = [credit.pool for credit in plan.credits]
        for index, credit in enumerate(plan.credits):
            field = f"{where}, field 'credits[{index}]"
            if pools.count(credit.pool) > 1:
                yield f"{field}.pool'", f"pool '{credit.pool}' is granted twice"
            for feature_key in credit.features:
                if catalog.features.get(feature_key) is None:
                    yield f"{field}.features'", f"unknown feature '{feature_key}'"
                elif not isinstance(plan.features.get(feature_key), MeteredAllowance):
                    yield (
                        f"{field}.features'",
                        f"'{feature_key}' is not a metered feature of this plan",
                    )
            if (credit.rollover == "capped") != (credit.rollover_cap is not None):
                yield f"{field}.rollover_cap'", "rollover_cap goes with rollover = 'capped' only"
            if (credit.rollover == "expire") != (credit.expire_after_periods is not None):
                yield (
                    f"{field}.expire_after_periods'",
                    "expire_after_periods goes with rollover = 'expire' only",
                )


def _feature_problems(
    catalog: Catalog, plan: Plan, feature_key: str, grant: bool | MeteredAllowance
) -> Iterator[tuple[str, str]]:
    field = f"plan '{plan.key}', field 'features.{feature_key}'"
    definition = catalog.features.get(feature_key)
    if definition is None:
        yield field, f"unknown feature '{feature_key}' (declare it under [features])"
        return
    if definition.kind == "boolean" and not isinstance(grant, bool):
        yield field, f"'{feature_key}' is a boolean feature: write true or false"
    if definition.kind == "metered" and not isinstance(grant, MeteredAllowance):
        yield field, f"'{feature_key}' is metered: give a table such as {{ included = 1000 }}"
    if not isinstance(grant, MeteredAllowance):
        return
    if grant.unlimited and (grant.limit or grant.included or grant.billable_overage):
        yield field, "an unlimited feature has no included units, limit or overage price"
    has_credits = any(feature_key in credit.features for credit in plan.credits)
    if not (grant.unlimited or grant.included or has_credits or grant.billable_overage):
        yield field, "nothing covers its use: set included, unlimited, an overage price or credits"
    if grant.limit is not None and grant.included > grant.limit:
        yield field, "included units exceed the hard limit"


def _cost_problems(catalog: Catalog) -> Iterator[tuple[str, str]]:
    for feature_key in catalog.costs.features:
        definition = catalog.features.get(feature_key)
        if definition is None or definition.kind != "metered":
            yield f"field 'costs.features.{feature_key}'", "not a metered feature of the catalog"
