"""``flask stripe setup`` registers Tollgate's webhook endpoint and configures the billing
portal; ``flask webhooks retry``."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.billing.cli import stripe_cli
from app.billing.gateway import GatewayError
from app.billing.portal import PortalSettingError, set_up_portal
from app.webhooks.endpoint import register_endpoint, update_endpoint
from app.webhooks.retries import failed_event_ids, replay_events, retry_due_events


@stripe_cli.command("setup")
@click.option(
    "--url",
    required=True,
    help="Public URL of /stripe/webhook, e.g. https://billing.example.com/stripe/webhook",
)
def setup(url: str) -> None:
    """Configure Stripe's billing portal for Tollgate, then register Tollgate's webhook endpoint
    and print its signing secret; re-run, both are brought up to date (an endpoint already
    registered for the URL is sent every event type Tollgate now handles)."""
    if not url.startswith(("https://", "http://")):
        raise click.BadParameter("give the full URL, starting with https://", param_hint="--url")
    # The portal first: a setting Stripe refuses stops the command before the endpoint's
    # secret, which Stripe shows once, could be printed and lost.
    _set_up_portal()
    try:
        updated = update_endpoint(url)
        if updated is not None:
            click.echo(
                f"Webhook endpoint {updated} for {url} receives every event type Tollgate "
                "handles; its signing secret (STRIPE_WEBHOOK_SECRET) is unchanged."
            )
            return
        endpoint_id, secret = register_endpoint(url)
    except GatewayError as exc:
        raise click.ClickException(f"Stripe refused the endpoint: {exc.detail}") from exc
    click.echo(f"Registered webhook endpoint {endpoint_id} for {url}.")
    click.echo("Stripe shows its signing secret only now. Configure Tollgate with:")
    click.echo(f"  STRIPE_WEBHOOK_SECRET={secret}")


def _set_up_portal() -> None:
    try:
        done = set_up_portal()
    except PortalSettingError as exc:
        raise click.ClickException(f"{exc} Nothing was changed.") from exc
    except GatewayError as exc:
        raise click.ClickException(
            f"Stripe refused the billing-portal configuration: {exc.detail} Nothing was changed."
        ) from exc
    verb = "Created" if done.created else "Updated"
    allowed = ["card", "billing address", "name", "tax IDs", "invoice history"]
    if done.options.plan_changes:
        allowed.append("plan changes")
    if done.options.cancel:
        allowed.append("cancelling at period end")
    click.echo(
        f"{verb} billing-portal configuration {done.configuration_id}: "
        f"customers may change {', '.join(allowed)}."
    )


webhooks_cli = AppGroup("webhooks", help="The log of Stripe's events.")


@webhooks_cli.command("retry")
@click.argument("event_ids", nargs=-1)
def retry(event_ids: tuple[str, ...]) -> None:
    """Apply again the failed events that are due (what the worker does every minute), or the
    named events now, dead ones included."""
    report = replay_events(event_ids) if event_ids else retry_due_events()
    click.echo(f"{len(report.processed)} processed, {len(report.failed)} failed.")
    for event_id, error in report.failed:
        click.echo(f"{event_id}: {error}")


@webhooks_cli.command("replay")
@click.argument("event_ids", nargs=-1)
@click.option("--failed", is_flag=True, help="Every event not processed yet, dead ones included.")
def replay(event_ids: tuple[str, ...], failed: bool) -> None:
    """Run stored events again through their handlers now: the named ones (processed or not),
    or with --failed every one that has not been processed."""
    if bool(event_ids) == failed:
        raise click.UsageError("Name the events to replay, or give --failed (not both).")
    ids = failed_event_ids() if failed else list(event_ids)
    report = replay_events(ids, again=True)
    click.echo(f"{len(report.processed)} replayed, {len(report.failed)} failed.")
    for event_id, error in report.failed:
        click.echo(f"{event_id}: {error}")
    if report.failed:
        raise SystemExit(1)
