"""``flask usage ...``: forward overage to Stripe, import usage from a file."""

from __future__ import annotations

from typing import TextIO

import click
from flask.cli import AppGroup

from app.entitlements.errors import UsageError
from app.entitlements.imports import import_usage_csv
from app.entitlements.outbox import forward_overage
from app.extensions import db

usage_cli = AppGroup("usage", help="Usage events and overage billing.")


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


@usage_cli.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
def import_file(file: TextIO) -> None:
    """Record the usage events of a CSV file and print what was recorded or rejected."""
    try:
        report = import_usage_csv(file.read())
    except UsageError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    replayed = sum(1 for row in report.recorded if row.result.replayed)
    click.echo(f"{len(report.recorded)} recorded ({replayed} already recorded before).")
    for row in report.rejected:
        click.echo(f"line {row.line}: {row.code}: {row.reason}")
    click.echo(f"{len(report.rejected)} rejected.")
