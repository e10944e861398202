"""The back office's money pages (added to the blueprint in routes.py)."""

from __future__ import annotations

from app.backoffice.routes import bp  # noqa: F401
