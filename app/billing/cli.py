"""``flask stripe ...`` and the commands of other groups that call Stripe.

Commands that talk to Stripe live here, in the layer that holds the gateway, even when their
group is a lower layer's (``flask catalog sync``, ``flask usage forward``).
"""

from __future__ import annotations

import logging

import click
from flask.cli import AppGroup
from rich.console import Console
from rich.progress import Progress, TaskID, TextColumn

from app.billing.catalog_sync import sync_catalog
from app.billing.gateway import GatewayError, gateway, gateway_with_key
from app.billing.models import ReconciliationRun, RunStatus
from app.billing.overage_forwarding import forward_overage
from app.billing.reconcile import recent_runs, reconcile
from app.billing.reports import RateColumn, print_import_report, print_run
from app.billing.stripe_import import Importer, ImportStopped, key_problem
from app.catalog import current_catalog
from app.catalog.cli import catalog_cli
from app.entitlements.cli import usage_cli
from app.extensions import db

stripe_cli = AppGroup("stripe", help="Connect Tollgate to Stripe.")


@catalog_cli.command("sync")
def sync() -> None:
    """Create or update the Stripe products, prices and meters of the catalog (idempotent)."""
    try:
        changes = sync_catalog(current_catalog(), gateway())
    except GatewayError as exc:
        raise click.ClickException(
            f"{exc.detail} What was synced before stays; run the sync again to finish it."
        ) from exc
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


@stripe_cli.command("import")
@click.option(
    "--dry-run", is_flag=True, help="Read everything and say what would change; write nothing."
)
@click.option(
    "--api-key",
    help="A key to read with instead of STRIPE_SECRET_KEY: a restricted key with read "
    "permissions is enough.",
)
def import_account(dry_run: bool, api_key: str | None) -> None:
    """Adopt the Stripe account's customers, subscriptions, invoices, charges, refunds and
    disputes; resumable (a re-run goes on where an interrupted one stopped) and idempotent."""
    problem = key_problem(api_key)
    if problem:
        raise click.ClickException(problem)
    stripe_gateway = gateway_with_key(api_key) if api_key else gateway()
    # The SDK's line per call would bury the progress bars, which say the same.
    logging.getLogger("stripe").setLevel(logging.WARNING)
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description:<14}"),
        TextColumn("{task.completed:>9,} read"),
        RateColumn(),
        console=console,
        transient=False,
    ) as progress:
        tasks: dict[str, TaskID] = {}

        def advance(object_type: str, count: int) -> None:
            if object_type not in tasks:
                tasks[object_type] = progress.add_task(object_type, total=None)
            progress.advance(tasks[object_type], count)

        importer = Importer(stripe_gateway, dry_run=dry_run, progress=advance)
        try:
            report = importer.run()
        except ImportStopped as exc:
            raise click.ClickException(str(exc)) from exc
        except KeyboardInterrupt:
            progress.stop()
            raise click.ClickException(
                "Interrupted. What was read up to the last full page is kept"
                + ("" if dry_run else "; run the import again to go on from there.")
            ) from None
    print_import_report(report)


@stripe_cli.command("reconcile")
@click.option("--full", is_flag=True, help="Read every live subscription too (done weekly).")
def reconcile_command(full: bool) -> None:
    """Compare the mirror with Stripe since the last run, repair each difference, and check
    the usage sent to Stripe Meters against Stripe's totals."""
    run = reconcile(full_sweep=True if full else None)
    print_run(run, with_differences=True)
    if run.status is RunStatus.FAILED:
        raise SystemExit(1)


@stripe_cli.command("runs")
@click.argument("run_id", type=int, required=False)
@click.option("--limit", default=10, show_default=True, help="How many runs to list.")
def runs(run_id: int | None, limit: int) -> None:
    """The last reconciliation runs, or one run with its differences."""
    if run_id is not None:
        run = db.session.get(ReconciliationRun, run_id)
        if run is None:
            raise click.ClickException(f"No reconciliation run {run_id}.")
        print_run(run, with_differences=True)
        return
    found = recent_runs(limit)
    if not found:
        click.echo("No reconciliation has run yet: `flask stripe reconcile` runs one.")
    for run in found:
        print_run(run, with_differences=False)
