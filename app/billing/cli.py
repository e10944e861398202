"""``flask stripe ...`` and the commands of other groups that call Stripe.

Commands that talk to Stripe live here, in the layer that holds the gateway, even when their
group is a lower layer's (``flask catalog sync``, ``flask usage forward``).
"""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.billing.catalog_sync import sync_catalog
from app.billing.gateway import gateway
from app.billing.overage_forwarding import forward_overage
from app.catalog import current_catalog
from app.catalog.cli import catalog_cli
from app.entitlements.cli import usage_cli

stripe_cli = AppGroup("stripe", help="Connect Tollgate to Stripe.")


@catalog_cli.command("sync")
def sync() -> None:
    """Create or update the Stripe products, prices and meters of the catalog (idempotent)."""
    changes = sync_catalog(current_catalog(), gateway())
    for line in changes:
        click.echo(line)
    click.echo(f"Stripe matches the catalog ({len(changes)} change(s)).")


@usage_cli.command("forward")
@click.option("--limit", default=1000, show_default=True, help="Most outbox rows to batch.")
def forward(limit: int) -> None:
    """Send billable overage to Stripe Meters, one event per customer and meter."""
    report = forward_overage(limit=limit)
    for batch in report.sent:
        click.echo(
            f"sent {batch.units:,} {batch.event_name} for {batch.customer_reference_id}"
            f" ({batch.identifier})"
        )
    for batch, error in report.failed:
        click.echo(f"failed {batch.identifier} for {batch.customer_reference_id}: {error}")
    click.echo(f"{len(report.sent)} sent, {len(report.failed)} failed.")
    if report.failed:
        raise SystemExit(1)
