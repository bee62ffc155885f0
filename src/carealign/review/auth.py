"""Passwords (Argon2id), login sessions with a CSRF token each, and login rate limiting.

- Passwords are hashed with argon2-cffi's defaults (Argon2id, RFC 9106 low-memory profile) and
  rehashed on login when those defaults change.
- A session is a random token in an HttpOnly, SameSite cookie; the database keeps only its
  SHA-256, the user, an expiry and the session's CSRF token, which every form and every
  state-changing JSON request must send back.
- Failed logins are counted per user name and per client address over a sliding window; past
  the limit, logins are refused (HTTP 429) until the window has moved on.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, joinedload

from carealign.review.models import AuthSession, LoginAttempt, User, utcnow

_hasher = PasswordHasher()
#: A hash verified when the user name is unknown, so that both cases take as long.
_DUMMY_HASH = _hasher.hash("carealign-no-such-user")

#: Minimum password length accepted when creating users or changing passwords.
MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    """An Argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (never raises on a wrong password)."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def token_digest(token: str) -> str:
    """The SHA-256 under which a session token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_match(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison of two tokens; missing tokens never match."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


@dataclass(frozen=True)
class LoginLimits:
    """How many failed logins are allowed within ``window`` before logins are refused."""

    per_user: int = 5
    per_address: int = 20
    window: timedelta = timedelta(minutes=15)


class LoginRefused(Exception):
    """Too many failed logins; ``retry_after`` is in seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after} s")
        self.retry_after = retry_after


def _check_rate(db: Session, name: str, ip: str, limits: LoginLimits, now: datetime) -> None:
    since = now - limits.window
    for column, value, limit in (
        (LoginAttempt.username, name, limits.per_user),
        (LoginAttempt.ip, ip, limits.per_address),
    ):
        failures = select(LoginAttempt.at).where(column == value, LoginAttempt.at >= since, LoginAttempt.ok.is_(False))
        count = db.scalar(select(func.count()).select_from(failures.subquery())) or 0
        if count >= limit:
            oldest = db.scalar(failures.order_by(LoginAttempt.at.desc()).offset(limit - 1).limit(1))
            retry = (oldest + limits.window - now).total_seconds() if oldest else limits.window.total_seconds()
            raise LoginRefused(max(1, int(retry) + 1))


def authenticate(db: Session, name: str, password: str, ip: str, limits: LoginLimits) -> User | None:
    """The active user with this name and password, or ``None``; every attempt is recorded.

    Raises :class:`LoginRefused` when too many recent attempts for this name or address failed.
    Commits (the attempt must be counted even when the login fails).
    """
    now = utcnow()
    name = name.strip()[:64]
    ip = ip[:64]
    _check_rate(db, name, ip, limits, now)
    user = db.scalar(select(User).where(User.name == name))
    if user is None or not user.active:
        verify_password(_DUMMY_HASH, password)
        ok = False
    else:
        ok = verify_password(user.password_hash, password)
        if ok and _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
    db.add(LoginAttempt(at=now, username=name, ip=ip, ok=ok))
    db.commit()
    return user if ok else None


def start_session(db: Session, user: User, lifetime: timedelta) -> tuple[str, AuthSession]:
    """Create a session for ``user``; return the cookie token and the stored session. Commits."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    row = AuthSession(
        id=token_digest(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + lifetime,
    )
    db.add(row)
    db.execute(delete(AuthSession).where(AuthSession.user_id == user.id, AuthSession.expires_at < now))
    db.commit()
    return token, row


def find_session(db: Session, token: str | None) -> AuthSession | None:
    """The live session of a cookie token (its user active), or ``None``."""
    if not token or len(token) > 128:
        return None
    row = db.scalar(
        select(AuthSession)
        .where(AuthSession.id == token_digest(token))
        .options(joinedload(AuthSession.user).selectinload(User.groups))
    )
    if row is None or row.expires_at <= utcnow() or not row.user.active:
        return None
    return row


def end_session(db: Session, token: str | None) -> None:
    """Delete the session of a cookie token, if any. Commits."""
    if token:
        db.execute(delete(AuthSession).where(AuthSession.id == token_digest(token)))
        db.commit()


def end_user_sessions(db: Session, user_id: int) -> None:
    """Delete every session of a user (after a password change or deactivation). Does not commit."""
    db.execute(delete(AuthSession).where(AuthSession.user_id == user_id))
