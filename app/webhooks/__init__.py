"""Stripe's webhooks: verified, recorded once by event id, dispatched to one handler per type."""
