"""The back office's webhook pages (added to the blueprint in routes.py)."""

from __future__ import annotations

from app.backoffice.routes import bp  # noqa: F401
