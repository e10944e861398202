"""Creating, listing, revoking and checking API keys."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select

from app.accounts.models import utcnow
from app.api.models import ApiKey
from app.extensions import db

KEY_PREFIX = "tg_key_"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(name: str) -> tuple[ApiKey, str]:
    """A new key named ``name``; the plain key is returned once and never kept."""
    plain = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(name=name, prefix=plain[: len(KEY_PREFIX) + 6], key_hash=_hash(plain))
    db.session.add(key)
    db.session.flush()
    return key, plain


def all_keys() -> list[ApiKey]:
    """Every key, newest first."""
    return list(db.session.scalars(select(ApiKey).order_by(ApiKey.id.desc())))


def revoke_key(key_id: int) -> ApiKey | None:
    """Stop a key from working; None when there is no such key."""
    key = db.session.get(ApiKey, key_id)
    if key is not None and key.revoked_at is None:
        key.revoked_at = utcnow()
        db.session.flush()
    return key


def find_active_key(plain: str) -> ApiKey | None:
    """The unrevoked key whose hash matches ``plain``."""
    if not plain.startswith(KEY_PREFIX):
        return None
    return db.session.scalar(
        select(ApiKey).where(ApiKey.key_hash == _hash(plain), ApiKey.revoked_at.is_(None))
    )
