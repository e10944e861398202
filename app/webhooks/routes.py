"""POST /stripe/webhook: verify the signature on the raw body, then process the event."""

from __future__ import annotations

import logging

import stripe
from flask import Blueprint, current_app, jsonify, request
from werkzeug.wrappers import Response

from app.extensions import csrf
from app.metrics import WEBHOOK_OUTCOMES
from app.webhooks.processing import process_event

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__)


def _answer(http_status: int, **body: str) -> tuple[Response, int]:
    return jsonify(body), http_status


@bp.post("/stripe/webhook")
@csrf.exempt
def receive() -> tuple[Response, int]:
    """Stripe's webhook: 2xx when handled (now or before), 4xx for a bad request, 5xx to retry."""
    secret = current_app.config.get("STRIPE_WEBHOOK_SECRET")
    if not secret:
        # No secret, no webhooks: an unverified event could grant anyone anything.
        log.error("Stripe webhook refused: STRIPE_WEBHOOK_SECRET is not configured")
        return _answer(503, error="webhooks are not configured on this server")
    signature = request.headers.get("Stripe-Signature")
    if not signature:
        return _answer(400, error="missing Stripe-Signature header")
    try:
        event = stripe.Webhook.construct_event(request.get_data(), signature, secret)
    except stripe.SignatureVerificationError:
        log.warning("Stripe webhook with a bad or stale signature refused")
        return _answer(400, error="signature verification failed")
    except ValueError:
        return _answer(400, error="body is not a Stripe event")
    try:
        outcome = process_event(event)
    except Exception:
        log.exception("Stripe event %s (%s) failed; Stripe will retry it", event.id, event.type)
        WEBHOOK_OUTCOMES.labels(event.type, "failed").inc()
        return _answer(500, error="the event could not be processed; it will be retried")
    WEBHOOK_OUTCOMES.labels(event.type, outcome.value).inc()
    return _answer(200, status=outcome.value)
