"""``flask api-keys ...``: manage the keys of the JSON API."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.accounts.api_keys import GRANTS, WRITE, scopes_of
from app.api.keys import all_keys, create_key, revoke_key
from app.extensions import db

api_keys_cli = AppGroup("api-keys", help="Manage the JSON API's keys.")


def _scopes(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> list[str]:
    """``--scope read``, ``--scope read,write`` or ``--scope read --scope write``."""
    chosen = [part.strip().lower() for value in values for part in value.split(",")]
    for scope in chosen:
        if scope not in GRANTS:
            raise click.BadParameter(
                f"{scope!r} is not a scope. Choose read (plans, customers, entitlement checks,"
                " balances) or write (all of read, plus usage events, new customers and"
                " subscriptions)."
            )
    return chosen or [WRITE]


@api_keys_cli.command("create")
@click.option("--name", required=True, help="What the key is for, e.g. 'backend production'.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    callback=_scopes,
    metavar="read|write",
    help="What the key may do: read, or write (which includes read). Default: write.",
)
def create(name: str, scopes: list[str]) -> None:
    """Create a key and print it once."""
    key, plain = create_key(name.strip(), scopes)
    db.session.commit()
    click.echo(
        f"Created API key {key.id} ({key.name}) with scopes {_listed(key.scopes)}."
        " It is shown only now:"
    )
    click.echo(plain)


def _listed(stored: str) -> str:
    return ",".join(sorted(scopes_of(stored)))


@api_keys_cli.command("list")
def list_keys() -> None:
    """List keys (their prefixes only) with their scopes."""
    keys = all_keys()
    if not keys:
        click.echo("No API keys yet: flask api-keys create --name NAME [--scope read|write]")
    for key in keys:
        state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
        click.echo(
            f"{key.id}\t{key.prefix}…\t{key.name}\t{_listed(key.scopes)}\t{state}"
            f"\tcreated {key.created_at:%Y-%m-%d}"
        )


@api_keys_cli.command("revoke")
@click.argument("key_id", type=int)
def revoke(key_id: int) -> None:
    """Revoke the key with this id (from `flask api-keys list`)."""
    key = revoke_key(key_id)
    if key is None:
        raise click.ClickException(f"There is no API key {key_id}.")
    db.session.commit()
    click.echo(f"Revoked API key {key.id} ({key.name}).")
