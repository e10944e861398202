"""`flask sandbox advance`, `deliver`, `fill` and `restricted-key` for driving the sandbox by
hand."""

from __future__ import annotations

import datetime as dt
import time

import click
from flask import Blueprint, current_app

from .fill import FillOptions, fill, report
from .keys import READ, WRITE

# Stripe's Dashboard offers None, Read or Write per resource; None is the same as leaving it out.
NONE = "none"


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

    @bp.cli.command("fill")
    @click.option(
        "--customers",
        type=click.IntRange(min=0),
        default=1000,
        show_default=True,
        help="Customers of the account.",
    )
    @click.option(
        "--invoices",
        type=click.IntRange(min=1),
        default=3,
        show_default=True,
        help="Invoices per monthly subscription (a yearly one has one per twelve of them).",
    )
    @click.option(
        "--seed",
        type=int,
        default=0,
        show_default=True,
        help="The same seed gives the same counts and statuses.",
    )
    def fill_account(customers: int, invoices: int, seed: int) -> None:
        """Fill the sandbox with a Stripe account that Tollgate did not make: customers,
        subscriptions in every state and their history of invoices, charges, refunds and
        disputes, sending no webhook."""
        sandbox = current_app.extensions["stripe_sandbox"]
        started = time.perf_counter()
        summary = fill(sandbox, FillOptions(customers, invoices, seed))
        click.echo(f"Filled the sandbox in {time.perf_counter() - started:.1f} s.")
        for line in report(summary):
            click.echo(line)

    @bp.cli.command("restricted-key")
    @click.argument("permissions", nargs=-1, required=True, metavar="GROUP=LEVEL...")
    def restricted_key(permissions: tuple[str, ...]) -> None:
        """Make a restricted key, `rk_test_...`, that may only read or write the resource groups
        given, e.g. `customers=write invoices=read` (LEVEL is read, write or none), and print it."""
        granted: dict[str, str] = {}
        for permission in permissions:
            group, _, level = permission.partition("=")
            if level not in (READ, WRITE, NONE):
                raise click.BadParameter(
                    f"{permission!r}: give GROUP=read, GROUP=write or GROUP=none",
                    param_hint="GROUP=LEVEL",
                )
            if level != NONE:
                granted[group] = level
        sandbox = current_app.extensions["stripe_sandbox"]
        try:
            key = sandbox.create_restricted_key(granted)
        except ValueError as exc:  # an unknown group: the message lists the known ones
            raise click.BadParameter(str(exc), param_hint="GROUP=LEVEL") from exc
        click.echo(key)
