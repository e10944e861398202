"""Registering Tollgate's webhook endpoint with Stripe (automatically with the sandbox)."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

from flask import current_app

from app.billing.event_handlers import HANDLERS
from app.billing.gateway import gateway

SECRETS_FILE = "sandbox_webhook_endpoint.json"


def endpoint_url() -> str:
    """The public URL of /stripe/webhook."""
    # Built from the URL map rather than a request, since this runs at start-up too.
    path = current_app.url_map.bind("tollgate").build("webhooks.receive")
    return str(current_app.config["TOLLGATE_BASE_URL"]).rstrip("/") + path


def register_endpoint(url: str) -> tuple[str, str]:
    """Create an endpoint for every event type Tollgate handles; returns (id, signing secret)."""
    endpoint = gateway().create_webhook_endpoint(url, sorted(HANDLERS))
    return endpoint.id, str(endpoint.secret)


def update_endpoint(url: str) -> str | None:
    """Send the endpoint already registered for ``url`` every event type this version of
    Tollgate handles (a new version may handle more); its id, or None if there is none."""
    for endpoint in gateway().webhook_endpoints():
        if endpoint.url == url:
            if sorted(endpoint.enabled_events) != sorted(HANDLERS):
                gateway().update_webhook_endpoint(endpoint.id, sorted(HANDLERS))
            return endpoint.id
    return None


def register_sandbox_endpoint() -> str:
    """The sandbox endpoint's signing secret, registering the endpoint on first start.

    Stripe shows a secret only when the endpoint is created, so it is kept under instance/ to
    survive restarts, one per URL: a command started for another port (another
    TOLLGATE_BASE_URL) registers its own endpoint and never replaces the running server's. A
    sandbox that lost the endpoint gets a new one.
    """
    saved_file = Path(current_app.instance_path) / SECRETS_FILE
    saved_file.parent.mkdir(parents=True, exist_ok=True)
    # Processes starting together (gunicorn workers, a CLI command beside the server) take turns,
    # so they agree on one endpoint and its secret.
    with open(saved_file.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _registered_secret(saved_file)


def _registered_secret(saved_file: Path) -> str:
    url = endpoint_url()
    saved = _saved_endpoints(saved_file)
    endpoints = [endpoint for endpoint in gateway().webhook_endpoints() if endpoint.url == url]
    existing = {endpoint.id for endpoint in endpoints}
    mine = saved.get(url, {})
    if mine.get("id") in existing:
        endpoint_id, secret = str(mine["id"]), str(mine["secret"])
        current = next(endpoint for endpoint in endpoints if endpoint.id == endpoint_id)
        if sorted(current.enabled_events) != sorted(HANDLERS):
            # Registered by an earlier version, which handled fewer event types.
            gateway().update_webhook_endpoint(endpoint_id, sorted(HANDLERS))
    else:
        endpoint_id, secret = register_endpoint(url)
    # Another endpoint for this URL has a secret nobody here knows: its deliveries could only
    # ever be refused, so it goes.
    for stale in existing - {endpoint_id}:
        gateway().delete_webhook_endpoint(stale)
    if mine.get("id") != endpoint_id:
        saved[url] = {"id": endpoint_id, "secret": secret}
        saved_file.write_text(json.dumps({"endpoints": saved}, indent=2))
        saved_file.chmod(0o600)
    return secret


def _saved_endpoints(saved_file: Path) -> dict[str, dict[str, str]]:
    """The saved endpoints by URL (a file of one endpoint, as written before, is read too)."""
    if not saved_file.exists():
        return {}
    saved = json.loads(saved_file.read_text())
    if "endpoints" in saved:
        return dict(saved["endpoints"])
    return {saved["url"]: {"id": saved["id"], "secret": saved["secret"]}} if "url" in saved else {}
