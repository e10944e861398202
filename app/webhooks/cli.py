"""``flask stripe setup``: register Tollgate's webhook endpoint with Stripe."""

from __future__ import annotations

import click

from app.billing.cli import stripe_cli
from app.billing.gateway import GatewayError
from app.webhooks.endpoint import register_endpoint


@stripe_cli.command("setup")
@click.option(
    "--url",
    required=True,
    help="Public URL of /stripe/webhook, e.g. https://billing.example.com/stripe/webhook",
)
def setup(url: str) -> None:
    """Register Tollgate's webhook endpoint with Stripe and print its signing secret."""
    if not url.startswith(("https://", "http://")):
        raise click.BadParameter("give the full URL, starting with https://", param_hint="--url")
    try:
        endpoint_id, secret = register_endpoint(url)
    except GatewayError as exc:
        raise click.ClickException(f"Stripe refused the endpoint: {exc}") from exc
    click.echo(f"Registered webhook endpoint {endpoint_id} for {url}.")
    click.echo("Stripe shows its signing secret only now. Configure Tollgate with:")
    click.echo(f"  STRIPE_WEBHOOK_SECRET={secret}")
