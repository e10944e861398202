"""`flask sandbox seed-demo`: a year of customers for the back office to show."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import click
from flask import Flask, current_app, url_for
from flask.cli import AppGroup, with_appcontext
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select

from app.accounts.models import Customer
from app.accounts.passwords import hash_password
from app.billing.checkout import CheckoutUrls
from app.catalog import current_catalog
from app.clock import now
from app.demo.acts import Links, Stage
from app.demo.lineup import Lineup
from app.demo.report import summary
from app.demo.run import Play
from app.demo.story import DAYS, REFERENCE_PREFIX, write_story
from app.extensions import db
from app.stripe_sandbox import SenderBusy

# Every demo customer with a login signs in with its email and this password.
DEMO_PASSWORD = "tollgate-demo"  # noqa: S105 - made up, and printed for all to use


def register_demo_command(app: Flask) -> None:
    """Add the command to the `flask sandbox` group; against real Stripe there is no such
    group, so it gets one of its own, where the command says why it will not run."""
    group = app.cli.commands.get("sandbox")
    if not isinstance(group, click.Group):
        group = AppGroup("sandbox", help="The built-in Stripe sandbox (sandbox mode only).")
        app.cli.add_command(group)
    group.add_command(seed_demo)


@click.command("seed-demo")
@click.option(
    "--customers",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    help="How many customers join over the year.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="The same seed, the same story."
)
@click.option(
    "--force",
    is_flag=True,
    help="Seed a database that has customers already: the demo's join beside them, and their "
    "year starts at the sandbox's time now.",
)
@with_appcontext
def seed_demo(customers: int, seed: int, force: bool) -> None:
    """Play a year of customers through the sandbox's clock: sign-ups and trials, upgrades,
    downgrades and cancellations, declined cards and dunning, refunds, disputes and usage,
    which Tollgate hears of as webhooks. The sandbox's clock ends a year ahead. Stop the server
    (make run) first."""
    if not current_app.config["STRIPE_SANDBOX"]:
        raise click.ClickException(
            "seed-demo runs against the built-in Stripe sandbox only, and STRIPE_SECRET_KEY is set."
        )
    existing = db.session.scalar(select(func.count()).select_from(Customer)) or 0
    if existing and not force:
        raise click.ClickException(
            f"The database has {existing:,} customer(s) already; "
            "--force adds the demo's beside them."
        )
    taken = {email for email in db.session.scalars(select(Customer.email)) if email}
    numbered = db.session.scalar(
        select(func.count()).where(Customer.reference_id.startswith(REFERENCE_PREFIX))
    )
    story = write_story(
        customers, seed, Lineup.of(current_catalog()), taken=taken, first_number=(numbered or 0) + 1
    )
    stage = Stage(current_app.test_client(), _links(), hash_password(DEMO_PASSWORD))
    sandbox = current_app.extensions["stripe_sandbox"]
    started = time.perf_counter()
    try:
        with sandbox.by_hand(), _quiet_logs(), _progress() as progress:
            play = Play(story, sandbox, stage, DAYS)
            task = progress.add_task(f"{now():%d %b %Y}", total=DAYS, status="")

            def show(day: int) -> None:
                progress.update(
                    task,
                    advance=1,
                    description=f"{now():%d %b %Y}",
                    status=f"{len(stage.customers):,} customers · {play.webhooks:,} webhooks · "
                    f"{play.usage_events:,} usage events",
                )

            play.run(show)
    except SenderBusy as exc:
        raise click.ClickException(f"Stop the server first: {exc}.") from None
    table = Table(
        title=f"The demo's year, played in {time.perf_counter() - started:.0f} s", show_header=False
    )
    for label, value in summary(stage.customers.values(), play.current_subscriptions()):
        table.add_row(label, value)
    table.add_row("acts", ", ".join(f"{n} {kind}" for kind, n in sorted(stage.done.items())))
    refused = ", ".join(f"{n:,} {code}" for code, n in play.usage_refused.most_common())
    table.add_row("usage refused", refused or "none")
    pending = len(sandbox.pending_deliveries())
    table.add_row(
        "webhooks",
        f"{play.webhooks:,} delivered" + (f", {pending:,} waiting for a retry" if pending else ""),
    )
    console = Console()
    console.print(table)
    console.print(
        f"Sandbox time is now {now():%d %B %Y}. Customers with a login sign in with their email "
        f"and the password {DEMO_PASSWORD}; for /admin, make an operator with "
        "`flask users create-operator EMAIL`."
    )


def _links() -> Links:
    with current_app.test_request_context(base_url=current_app.config["TOLLGATE_BASE_URL"]):
        return Links(
            checkout=CheckoutUrls(
                success=url_for("billing.checkout_done", _external=True)
                + "?session_id={CHECKOUT_SESSION_ID}",
                cancel=url_for("billing.pricing", _external=True),
            ),
            account=url_for("billing.account", _external=True),
        )


def _progress() -> Progress:
    """Days played, on stderr: the summary goes to stdout."""
    return Progress(
        TextColumn("{task.description:>11}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("days"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=Console(stderr=True),
    )


@contextmanager
def _quiet_logs() -> Iterator[None]:
    """Warnings only while the story plays: its thousands of requests would bury the progress."""
    loggers = [logging.getLogger(), logging.getLogger("stripe")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
