"""``flask users ...``: what the operator does for a person who logs in."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from app.accounts.invitations import invitation_token
from app.accounts.models import Role
from app.accounts.services import AccountError, find_user, register, unclaimed_customer
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


@users_cli.command("invite")
@click.argument("email")
def invite(email: str) -> None:
    """Print the link with which the owner of the customer with EMAIL (one an import adopted
    from Stripe) sets a password; valid for a week. Send it to them."""
    customer = unclaimed_customer(email)
    if customer is None:
        raise click.ClickException(
            f"No customer with the email {email} is waiting to be claimed: it has an account "
            "already, or no customer has that email."
        )
    base = current_app.config["TOLLGATE_BASE_URL"].rstrip("/")
    click.echo(f"{base}/claim/{invitation_token(customer)}")


@users_cli.command("create-operator")
@click.argument("email")
def create_operator(email: str) -> None:
    """Make the user with EMAIL an operator, who may use the back office (/admin); with no
    such user, create one, asking for its password."""
    user = find_user(email)
    if user is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        try:
            user = register(email, password)
        except AccountError as exc:
            raise click.ClickException(str(exc)) from None
        verb = "is a new"
    else:
        verb = "is now an"
    user.role = Role.OPERATOR
    db.session.commit()
    click.echo(f"{user.email} {verb} operator: /admin is theirs.")
