"""Creating, listing, revoking and checking API keys."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable

from sqlalchemy import bindparam, select

from app.accounts.api_keys import WRITE, ApiKey, scopes_of, stored_scopes
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


def create_key(name: str, scopes: Iterable[str] = (WRITE,)) -> tuple[ApiKey, str]:
    """A new key named ``name`` with ``scopes`` (each in GRANTS; write includes read, and is
    the default); the plain key is returned once and never kept."""
    plain = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        name=name,
        prefix=plain[: len(KEY_PREFIX) + 6],
        key_hash=_hash(plain),
        scopes=stored_scopes(scopes),
    )
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
    select(ApiKey.scopes).where(
        ApiKey.key_hash == bindparam("key_hash", required=False), ApiKey.revoked_at.is_(None)
    )
)


def active_key_scopes(hashed: str) -> frozenset[str] | None:
    """The scopes of the unrevoked key stored as ``hashed`` (see key_hash), None when there is
    none: one indexed lookup, every time, so a revoked key stops working at once."""
    found = _ACTIVE_KEY.first(key_hash=hashed)
    return None if found is None else scopes_of(found[0])


def key_scopes(hashed: str) -> frozenset[str] | None:
    """The scopes of the unrevoked key stored as ``hashed``, None when there is none: from the
    worker's check cache when it knows (any change to any key drops what it knows, as it drops
    cached checks), else active_key_scopes()."""
    cache = check_cache()
    if cache is None:
        return active_key_scopes(hashed)
    known = cache.key_scopes(hashed)
    if known is not None:
        return known
    ticket = cache.ticket()
    scopes = active_key_scopes(hashed)
    if scopes is not None:
        cache.remember_key(ticket, hashed, scopes)
    return scopes
