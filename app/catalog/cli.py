"""``flask catalog ...``: look at the plan catalog."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.billing.gateway import gateway
from app.catalog import current_catalog
from app.catalog.stripe_sync import sync_catalog
from app.catalog.wording import billing_line, credit_lines, feature_lines, price_line, trial_line

catalog_cli = AppGroup("catalog", help="Inspect the plan catalog (plans.toml).")


@catalog_cli.command("sync")
def sync() -> None:
    """Create or update the Stripe products, prices and meters of the catalog (idempotent)."""
    changes = sync_catalog(current_catalog(), gateway())
    for line in changes:
        click.echo(line)
    click.echo(f"Stripe matches the catalog ({len(changes)} change(s)).")


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
