"""How `flask stripe import`, `reconcile` and `runs` print what they did."""

from __future__ import annotations

import click
from rich.console import Console
from rich.progress import ProgressColumn, Task
from rich.table import Table
from rich.text import Text

from app.billing.models import ReconciliationRun
from app.billing.stripe_import import CREATED_OUTCOME, SKIPPED, UNCHANGED, UPDATED, ImportReport


class RateColumn(ProgressColumn):
    """Objects a second, for lists whose length Stripe does not say."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:>8,.0f}/s" if speed else "", style="progress.data.speed")


def print_import_report(report: ImportReport) -> None:
    """A table of what became of each object type, then why objects were skipped."""
    table = Table(title="Dry run: nothing was written" if report.dry_run else "Import")
    table.add_column("object")
    for heading in ("read", CREATED_OUTCOME, UPDATED, UNCHANGED, SKIPPED):
        table.add_column(heading, justify="right")
    for part in report.types:
        counts = part.counts
        note = " (done before)" if part.done_before else ""
        table.add_row(
            part.object_type + note,
            f"{part.read:,}",
            *(f"{counts[outcome]:,}" for outcome in (CREATED_OUTCOME, UPDATED, UNCHANGED, SKIPPED)),
        )
    console = Console()
    console.print(table)
    for part in report.types:
        for reason, object_ids in part.skipped.items():
            examples = ", ".join(object_ids[:3]) + (", ..." if len(object_ids) > 3 else "")
            click.echo(f"skipped {len(object_ids):,} {part.object_type}: {reason}: {examples}")


def print_run(run: ReconciliationRun, *, with_differences: bool) -> None:
    """One line for the run; then each difference, if asked."""
    started = f"{run.started_at:%Y-%m-%d %H:%M} UTC"
    sweep = ", full sweep" if run.full_sweep else ""
    recurring = sum(1 for difference in run.differences if difference.recurring)
    click.echo(
        f"run {run.id}  {started}  {run.status.value}{sweep}: {run.objects_checked:,} checked, "
        f"{len(run.differences):,} difference(s)"
        + (f" ({recurring} recurring)" if recurring else "")
        + (f", {run.failures} failed" if run.failures else "")
        + (f"; {run.error}" if run.error else "")
    )
    if not with_differences:
        return
    for difference in run.differences:
        state = "repaired" if difference.repaired_at else "reported"
        flag = "  RECURRING" if difference.recurring else ""
        click.echo(
            f"  {difference.object_type} {difference.object_id} {difference.field}: "
            f"Tollgate had {difference.tollgate_value!s}, Stripe has {difference.stripe_value!s}"
            f" ({state}){flag}"
        )
