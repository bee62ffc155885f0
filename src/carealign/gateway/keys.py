"""API keys: created once and shown once, stored as SHA-256 digests, checked on every request,
and held to a per-key rate limit.

A key is ``ca-`` followed by 43 URL-safe characters (256 random bits), so a plain SHA-256 digest is
enough to store it (a slow password hash guards weak secrets; these are not, and every request
checks one). Checks are cached for :data:`CACHE_SECONDS`, so a revoked key stops working within
that time without a database read per request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from carealign.gateway.models import ApiKey
from carealign.review.accounts import check_name
from carealign.review.errors import InvalidInput, NotFound
from carealign.review.models import utcnow

KEY_PREFIX = "ca-"
#: Seconds a checked key is remembered (revocation takes effect within this time).
CACHE_SECONDS = 5.0
#: Requests per minute a new key may send unless told otherwise.
DEFAULT_RATE_PER_MINUTE = 60


def key_digest(key: str) -> str:
    """The SHA-256 hex digest under which a key is stored."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class KeyInfo:
    """What a request's key allows: who it is, its group, its rate limit and whether it may administer."""

    id: int
    name: str
    group: str | None
    rate_per_minute: int
    admin: bool


def create_key(
    db: Session,
    name: str,
    *,
    group: str | None = None,
    rate_per_minute: int = DEFAULT_RATE_PER_MINUTE,
    admin: bool = False,
) -> tuple[ApiKey, str]:
    """Create a key named ``name``; returns the row and the key itself (not stored anywhere). Flushes."""
    check_name(name, "key")
    if group is not None:
        check_name(group, "group")
    if rate_per_minute < 1:
        raise InvalidInput(f"rate limit {rate_per_minute!r}: expected at least 1 request per minute")
    if db.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
        raise InvalidInput(f"key {name!r} already exists")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        name=name,
        key_sha256=key_digest(secret),
        prefix=secret[:10],
        group_name=group,
        rate_per_minute=rate_per_minute,
        admin=admin,
    )
    db.add(row)
    db.flush()
    return row, secret


def revoke_key(db: Session, name: str) -> ApiKey:
    """Revoke a key (it stops working within :data:`CACHE_SECONDS`). Flushes."""
    row = db.scalar(select(ApiKey).where(ApiKey.name == name))
    if row is None:
        raise NotFound(f"no key named {name!r}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    db.flush()
    return row


def list_keys(db: Session) -> list[ApiKey]:
    return list(db.scalars(select(ApiKey).order_by(ApiKey.name)))


class KeyChecker:
    """Checks bearer keys against the database, caching answers for ``cache_seconds``."""

    def __init__(self, sessions: Callable[[], Session], cache_seconds: float = CACHE_SECONDS) -> None:
        self._sessions = sessions
        self._ttl = cache_seconds
        self._cache: dict[str, tuple[float, KeyInfo | None]] = {}
        self._lock = threading.Lock()

    def check(self, key: str | None) -> KeyInfo | None:
        """The key's info, or None for a missing, unknown or revoked key."""
        if not key or not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        digest = key_digest(key)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        with self._sessions() as db:
            row = db.scalar(select(ApiKey).where(ApiKey.key_sha256 == digest))
            info = None
            if row is not None and row.revoked_at is None and hmac.compare_digest(row.key_sha256, digest):
                info = KeyInfo(row.id, row.name, row.group_name, row.rate_per_minute, row.admin)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + self._ttl, info)
        return info


class RateLimiter:
    """A token bucket per key: ``rate_per_minute`` requests a minute, bursts up to the same number."""

    def __init__(self) -> None:
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: KeyInfo) -> float | None:
        """None when the request may go ahead; else the seconds until it may."""
        rate = key.rate_per_minute / 60.0
        capacity = float(key.rate_per_minute)
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key.id, (capacity, now))
            tokens = min(capacity, tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[key.id] = (tokens - 1.0, now)
                return None
            self._buckets[key.id] = (tokens, now)
            return (1.0 - tokens) / rate
