"""``flask revenue ...`` and ``flask costs ...``: the revenue and margin pages' figures from a
terminal, and the revenue history's upkeep."""

from __future__ import annotations

import csv
import sys
from datetime import UTC, date, datetime
from decimal import Decimal

import click
from flask.cli import AppGroup
from rich.console import Console
from rich.table import Table

from app.backoffice.margin_data import CSV_HEADER, csv_rows, margin_figures, twelve_months
from app.backoffice.revenue_data import revenue_figures
from app.billing.margin_floor import settle_margin_floors
from app.billing.models import RevenueMovement
from app.billing.revenue import rebuild_imported, take_snapshot
from app.clock import now
from app.extensions import db
from app.money import format_count, format_fine_money, format_money, format_percent

revenue_cli = AppGroup("revenue", help="Recurring revenue: figures, snapshots, history.")


@revenue_cli.command("show")
def show() -> None:
    """MRR and ARR now by tier, and the last twelve months' movements (as /admin/revenue)."""
    figures = revenue_figures()

    def money(amount: int) -> str:
        return format_money(amount, figures.currency)

    console = Console()
    now_table = Table("Tier", "MRR", "ARR", "Past due", "Paying", "Trials", "Pipeline")
    for line in [*figures.current.by_tier, figures.current.total]:
        now_table.add_row(
            line.name,
            money(line.mrr),
            money(line.arr),
            money(line.past_due_mrr),
            str(line.subscriptions),
            str(line.trialing),
            money(line.trial_pipeline),
        )
    console.print(now_table)
    months = Table(
        "Month",
        "Opening",
        *(movement.value.capitalize() for movement in RevenueMovement),
        "Closing",
        "Logo churn",
        "Revenue churn",
    )
    for month in figures.months:
        months.add_row(
            month.start.strftime("%Y-%m"),
            money(month.opening_mrr),
            *(money(month.amount(movement)) for movement in RevenueMovement),
            money(month.closing_mrr),
            format_percent(month.logo_churn),
            format_percent(month.revenue_churn),
        )
    console.print(months)
    console.print(
        f"Trial to paid over 12 months: {format_percent(figures.conversion)} "
        f"({figures.trials_converted} of {figures.trials_ended} trials ended)."
    )


@revenue_cli.command("snapshot")
@click.option("--day", type=click.DateTime(["%Y-%m-%d"]), help="The day to record (today).")
def snapshot(day: object) -> None:
    """Record each plan's recurring revenue for the day (the worker does just after 00:00 UTC);
    a day already recorded is left as it was."""
    when: date = day.date() if day is not None else now().date()  # type: ignore[attr-defined]
    written = take_snapshot(when)
    db.session.commit()
    click.echo(f"{when}: {written} plan(s) recorded." if written else f"{when} was recorded.")


@revenue_cli.command("rebuild")
def rebuild() -> None:
    """Rebuild imported customers' revenue history from their paid invoices (the import does it
    when it finishes). Customers Tollgate saw from the start keep the history it recorded."""
    customers, written = rebuild_imported()
    click.echo(f"{written} revenue change(s) from the invoices of {customers} customer(s).")


costs_cli = AppGroup("costs", help="What serving usage costs, against what it is billed.")
COST_LINES_SHOWN = 10


@costs_cli.command("report")
@click.option(
    "--month",
    type=click.DateTime(["%Y-%m"]),
    help="One of the last 12 months, YYYY-MM (this month).",
)
@click.option(
    "--csv",
    "as_csv",
    is_flag=True,
    help="Write one row per customer per period instead: the month's, or the last 12 months'.",
)
def report(month: datetime | None, as_csv: bool) -> None:
    """A month's revenue, cost and margin by tier and plan, and its most expensive features and
    models (as /admin/margin)."""
    chosen = month.replace(tzinfo=UTC) if month is not None else None
    if chosen is not None and chosen not in twelve_months():
        raise click.BadParameter("choose one of the last 12 months.", param_hint="--month")
    if as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(CSV_HEADER)
        for row in csv_rows(chosen):
            writer.writerow(["" if value is None else value for value in row])
        return
    figures = margin_figures(chosen)
    selected = figures.selected

    def money(amount: Decimal | int) -> str:
        return format_fine_money(amount, figures.currency)

    console = Console()
    plans = Table(title=f"Margin, {selected.start:%B %Y}")
    plans.add_column("Tier / plan", no_wrap=True)
    for heading in ("Revenue", "Cost", "Margin", "%", "Periods", "Floor billed", "Unpriced"):
        plans.add_column(heading)
    for lines in (selected.by_tier, selected.by_plan, [selected.total]):
        for line in lines:
            plans.add_row(
                line.name.capitalize() if lines is selected.by_tier else line.name,
                money(line.revenue),
                money(line.cost),
                money(line.margin),
                format_percent(line.margin_ratio),
                format_count(line.periods),
                format_money(line.floor_billed, figures.currency),
                format_count(line.unpriced),
            )
        plans.add_section()
    console.print(plans)
    dearest = Table("Feature", "Model", "Cost", "Events", "Unpriced", title="Most expensive")
    for cost_line in figures.lines[:COST_LINES_SHOWN]:
        dearest.add_row(
            cost_line.feature_key,
            cost_line.model or "-",
            money(cost_line.cost),
            format_count(cost_line.events),
            format_count(cost_line.unpriced),
        )
    console.print(dearest)
    if figures.unpriced_models:
        console.print(
            f"{format_count(selected.total.unpriced)} event(s) could not be priced: "
            f"models {', '.join(figures.unpriced_models)}."
        )


@costs_cli.command("settle")
def settle() -> None:
    """What the worker does every minute: bill what restores each running period's margin floor
    (queued for the forwarder, `flask usage forward`) and alert on periods below an alert floor;
    safe to run again."""
    report = settle_margin_floors()
    for billed in report.billed:
        click.echo(
            f"queued {billed.units:,} ({billed.total:,} in all) for period {billed.period_key}"
            f" ({billed.identifier})"
        )
    for period_key in report.alerted:
        click.echo(f"alerted: period {period_key} is below its plan's margin floor")
    if not report.billed and not report.alerted:
        click.echo("Nothing to bill or alert.")
