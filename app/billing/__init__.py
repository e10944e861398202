"""Billing: the Stripe gateway, checkout, plan changes; the pricing and account pages."""
