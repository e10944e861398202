"""`flask sandbox advance` and `flask sandbox deliver` for driving the sandbox by hand."""

from __future__ import annotations

import datetime as dt

import click
from flask import Blueprint, current_app


def register_commands(bp: Blueprint) -> None:
    """Attach the sandbox commands to the blueprint's `sandbox` CLI group."""

    @bp.cli.command("advance")
    @click.option("--days", type=int, default=0, help="Days to move the sandbox clock.")
    @click.option("--hours", type=int, default=0, help="Hours to move the sandbox clock.")
    def advance(days: int, hours: int) -> None:
        """Move the sandbox clock forward, running renewals, trials and dunning on the way."""
        sandbox = current_app.extensions["stripe_sandbox"]
        sandbox.advance(days * 86400 + hours * 3600)
        now = dt.datetime.fromtimestamp(sandbox.now(), dt.UTC)
        click.echo(f"Sandbox time is now {now:%Y-%m-%d %H:%M:%S} UTC ({sandbox.now()}).")

    @bp.cli.command("deliver")
    def deliver() -> None:
        """Post every queued webhook now."""
        sandbox = current_app.extensions["stripe_sandbox"]
        delivered = sandbox.deliver_pending()
        left = len(sandbox.pending_deliveries())
        click.echo(f"Delivered {delivered} webhook(s); {left} still pending.")
