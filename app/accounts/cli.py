"""``flask users ...``: what the operator does for a person who logs in."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.accounts.services import find_user
from app.extensions import db

users_cli = AppGroup("users", help="Manage the people who log in.")


@users_cli.command("sign-out-everywhere")
@click.argument("email")
def sign_out_everywhere(email: str) -> None:
    """End every session of the user with EMAIL, on every device (a lost laptop, a leak)."""
    user = find_user(email)
    if user is None:
        raise click.ClickException(f"No user with the email {email}.")
    user.end_sessions()
    db.session.commit()
    click.echo(f"Every session of {user.email} has ended; they log in again to continue.")
