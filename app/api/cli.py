"""``flask api-keys ...``: manage the keys of the JSON API."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.api.keys import all_keys, create_key, revoke_key
from app.extensions import db

api_keys_cli = AppGroup("api-keys", help="Manage the JSON API's keys.")


@api_keys_cli.command("create")
@click.option("--name", required=True, help="What the key is for, e.g. 'backend production'.")
def create(name: str) -> None:
    """Create a key and print it once."""
    key, plain = create_key(name.strip())
    db.session.commit()
    click.echo(f"Created API key {key.id} ({key.name}). It is shown only now:")
    click.echo(plain)


@api_keys_cli.command("list")
def list_keys() -> None:
    """List keys (their prefixes only)."""
    keys = all_keys()
    if not keys:
        click.echo("No API keys yet: flask api-keys create --name NAME")
    for key in keys:
        state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
        click.echo(
            f"{key.id}\t{key.prefix}…\t{key.name}\t{state}\tcreated {key.created_at:%Y-%m-%d}"
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
