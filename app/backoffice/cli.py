"""``flask revenue ...``: the revenue page's figures from a terminal, and its history's upkeep."""

from __future__ import annotations

from datetime import date

import click
from flask.cli import AppGroup
from rich.console import Console
from rich.table import Table

from app.backoffice.revenue_data import revenue_figures
from app.billing.models import RevenueMovement
from app.billing.revenue import rebuild_imported, take_snapshot
from app.clock import now
from app.extensions import db
from app.money import format_money, format_percent

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
