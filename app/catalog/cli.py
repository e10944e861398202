"""``flask catalog ...``: look at the plan catalog (``catalog sync`` is billing's)."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.catalog import current_catalog
from app.catalog.wording import (
    billing_line,
    credit_lines,
    feature_lines,
    floor_line,
    price_line,
    trial_line,
)

catalog_cli = AppGroup("catalog", help="Inspect the plan catalog (plans.toml).")


@catalog_cli.command("show")
def show() -> None:
    """Print every plan with its price, trial, features and credits."""
    catalog = current_catalog()
    click.echo(f"Tiers, lowest first: {', '.join(catalog.tiers)}")
    for plan in catalog.plans.values():
        click.echo("")
        click.secho(f"{plan.key}  ({plan.name}, tier {plan.tier})", bold=True)
        click.echo(f"  {price_line(plan)} · {billing_line(plan)}")
        trial = trial_line(plan)
        if trial:
            click.echo(f"  {trial}")
        for line in feature_lines(catalog, plan):
            click.echo(f"  - {line}")
        for line in credit_lines(plan):
            click.echo(f"  + {line}")
        floor = floor_line(plan)
        if floor:
            click.echo(f"  ! {floor}")
