"""The plan catalog: what can be bought, declared in plans.toml and synced to Stripe."""

from flask import current_app

from app.catalog.loader import CatalogError, load_catalog
from app.catalog.schema import Catalog, CreditGrant, FeatureDefinition, MeteredAllowance, Plan

__all__ = [
    "Catalog",
    "CatalogError",
    "CreditGrant",
    "FeatureDefinition",
    "MeteredAllowance",
    "Plan",
    "current_catalog",
    "load_catalog",
]


def current_catalog() -> Catalog:
    """The catalog loaded when the application started."""
    catalog: Catalog = current_app.extensions["tollgate.catalog"]
    return catalog
