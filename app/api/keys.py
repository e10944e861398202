"""Creating, listing, revoking and checking API keys."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import bindparam, select

from app.accounts.api_keys import ApiKey
from app.accounts.models import utcnow
from app.entitlements.fastpath.memory import check_cache
from app.entitlements.fastpath.prepared import PreparedRead
from app.extensions import db

KEY_PREFIX = "tg_key_"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_hash(plain: str) -> str | None:
    """What an unrevoked key with this text is stored as; None when it cannot be a key."""
    return _hash(plain) if plain.startswith(KEY_PREFIX) else None


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


# Every API request runs it: prepared once, run on a pooled cursor.
_ACTIVE_KEY = PreparedRead(
    select(ApiKey.id).where(
        ApiKey.key_hash == bindparam("key_hash", required=False), ApiKey.revoked_at.is_(None)
    )
)


def active_key_id(hashed: str) -> int | None:
    """The id of the unrevoked key stored as ``hashed`` (see key_hash): one indexed lookup,
    every time, so a revoked key stops working at once."""
    found = _ACTIVE_KEY.first(key_hash=hashed)
    return None if found is None else int(found[0])


def key_is_active(hashed: str) -> bool:
    """Whether ``hashed`` is an unrevoked key's: from the worker's check cache when it knows
    (revoking any key drops what it knows, as it drops cached checks), else active_key_id()."""
    cache = check_cache()
    if cache is None:
        return active_key_id(hashed) is not None
    if cache.knows_key(hashed):
        return True
    ticket = cache.ticket()
    if active_key_id(hashed) is None:
        return False
    cache.remember_key(ticket, hashed)
    return True
