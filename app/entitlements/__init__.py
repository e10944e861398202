"""Entitlements, usage and credits: what a customer may do, and what it has used."""
