"""Registering Tollgate's webhook endpoint with Stripe (automatically with the sandbox)."""

from __future__ import annotations

import json
from pathlib import Path

from flask import current_app

from app.billing.gateway import gateway
from app.webhooks.handlers import HANDLERS

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


def register_sandbox_endpoint() -> str:
    """The sandbox endpoint's signing secret, registering the endpoint on first start.

    Stripe shows a secret only when the endpoint is created, so it is kept under instance/ to
    survive restarts; a sandbox that lost the endpoint gets a new one.
    """
    url = endpoint_url()
    saved_file = Path(current_app.instance_path) / SECRETS_FILE
    saved = json.loads(saved_file.read_text()) if saved_file.exists() else {}
    existing = {endpoint.id for endpoint in gateway().webhook_endpoints() if endpoint.url == url}
    if saved.get("url") == url and saved.get("id") in existing:
        return str(saved["secret"])
    endpoint_id, secret = register_endpoint(url)
    saved_file.parent.mkdir(parents=True, exist_ok=True)
    saved_file.write_text(json.dumps({"id": endpoint_id, "url": url, "secret": secret}))
    saved_file.chmod(0o600)
    return secret
