"""``flask usage ...``: import usage from a file (``usage forward`` is billing's)."""

from __future__ import annotations

from typing import TextIO

import click
from flask.cli import AppGroup

from app.entitlements.errors import UsageError
from app.entitlements.fastpath.gc_pause import collector_paused
from app.entitlements.imports import import_usage_csv
from app.extensions import db

usage_cli = AppGroup("usage", help="Usage events and overage billing.")


@usage_cli.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
def import_file(file: TextIO) -> None:
    """Record the usage events of a CSV file and print what was recorded or rejected."""
    try:
        with collector_paused():
            report = import_usage_csv(file.read(), db.session.commit)
    except UsageError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    replayed = sum(1 for row in report.recorded if row.result.replayed)
    click.echo(f"{len(report.recorded)} recorded ({replayed} already recorded before).")
    for row in report.rejected:
        click.echo(f"line {row.line}: {row.code}: {row.reason}")
    click.echo(f"{len(report.rejected)} rejected.")
