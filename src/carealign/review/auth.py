"""Passwords (Argon2id), login sessions with a CSRF token each, and login rate limiting.

- Passwords are hashed with argon2-cffi's defaults (Argon2id, RFC 9106 low-memory profile) and
  rehashed on login when those defaults change.
- A session is a random token in an HttpOnly, SameSite cookie; the database keeps only its
  SHA-256, the user, an expiry and the session's CSRF token, which every form and every
  state-changing JSON request must send back.
- Failed logins are counted per user name and client address, and per client address, over a
  sliding window; past a limit, that address is refused (HTTP 429) until the window has moved
  on. Failures for a user name from everywhere only slow its logins down (see
  :class:`LoginLimits`), so nobody can lock out a user who knows their password.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Select, delete, func, select, update
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
    """Failed-login limits over a sliding ``window``.

    - ``per_user_address``: failures for one user name from one client address; past it that
      address gets 429 for that name (everyone else, including the user at their own address,
      still logs in);
    - ``per_address``: failures from one client address for any names;
    - ``user_delay_after`` / ``user_delay``: once a user name has that many failures from any
      address, every further attempt for it waits ``user_delay`` seconds before its password is
      checked. This slows a guesser spread over many addresses without ever refusing the right
      password.

    Client addresses are the TCP peer's, or the forwarded client's behind a trusted proxy
    (``ReviewSettings.trusted_proxies``).
    """

    per_user_address: int = 5
    per_address: int = 20
    user_delay_after: int = 5
    user_delay: float = 2.0
    window: timedelta = timedelta(minutes=15)


class LoginRefused(Exception):
    """Too many failed logins; ``retry_after`` is in seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class LoginTicket:
    """A login attempt that passed the limits: its recorded row, the name tried and how long to wait."""

    attempt_id: int
    name: str
    delay: float


def normalize_name(name: str) -> str:
    """A user name as stored and compared: stripped, Unicode NFC (so composed and decomposed
    spellings of ``dr.müller`` are one name)."""
    return unicodedata.normalize("NFC", name.strip())


def _failures(db: Session, since: datetime, exclude: int, *conditions: Any) -> Select[datetime]:
    """Failed (or still unchecked) attempts since ``since`` matching ``conditions``, but ``exclude``."""
    return select(LoginAttempt.at).where(
        *conditions, LoginAttempt.at >= since, LoginAttempt.ok.is_(False), LoginAttempt.id != exclude
    )


def _count(db: Session, query: Select[datetime]) -> int:
    return db.scalar(select(func.count()).select_from(query.subquery())) or 0


def begin_login(db: Session, name: str, ip: str, limits: LoginLimits) -> LoginTicket:
    """Record a login attempt, then check the limits; raise :class:`LoginRefused` past them.

    The attempt is written and committed, unchecked, *before* the failures are counted, and for
    its user name and address it counts as a failure until :func:`finish_login` has checked the
    password. So of N simultaneous attempts for one name from one address, the k-th to commit
    sees at least k-1 others: no more than ``per_user_address`` can get through, however many
    arrive at once. The per-address limit counts checked failures only, so that many people
    behind one address (a hospital's NAT) logging in at the same moment are not refused while
    their passwords are being checked; it can be overrun by the attempts in flight at once, each
    of which the per-name limit still bounds. A refused attempt is deleted (it was never tried).
    Commits.
    """
    now = utcnow()
    name = normalize_name(name)[:64]
    ip = ip[:64]
    row = LoginAttempt(at=now, username=name, ip=ip, ok=False, checked=False)
    db.add(row)
    db.commit()
    since = now - limits.window
    checked = LoginAttempt.checked.is_(True)
    for query, limit in (
        (_failures(db, since, row.id, LoginAttempt.username == name, LoginAttempt.ip == ip), limits.per_user_address),
        (_failures(db, since, row.id, LoginAttempt.ip == ip, checked), limits.per_address),
    ):
        if _count(db, query) >= limit:
            oldest = db.scalar(query.order_by(LoginAttempt.at.desc()).offset(limit - 1).limit(1))
            retry = (oldest + limits.window - now).total_seconds() if oldest else limits.window.total_seconds()
            db.execute(delete(LoginAttempt).where(LoginAttempt.id == row.id))
            db.commit()
            raise LoginRefused(max(1, int(retry) + 1))
    by_name = _count(db, _failures(db, since, row.id, LoginAttempt.username == name, checked))
    delay = limits.user_delay if by_name >= limits.user_delay_after else 0.0
    return LoginTicket(row.id, name, delay)


def finish_login(db: Session, ticket: LoginTicket, password: str) -> User | None:
    """Check the password of an attempt begun with :func:`begin_login`: the active user, or ``None``.

    Unknown names take as long as wrong passwords. A success is recorded on the attempt. Commits.
    """
    user = db.scalar(select(User).where(User.name == ticket.name))
    if user is None or not user.active:
        verify_password(_DUMMY_HASH, password)
        ok = False
    else:
        ok = verify_password(user.password_hash, password)
        if ok and _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
    db.execute(update(LoginAttempt).where(LoginAttempt.id == ticket.attempt_id).values(ok=ok, checked=True))
    db.commit()
    return user if ok else None


def authenticate(db: Session, name: str, password: str, ip: str, limits: LoginLimits) -> User | None:
    """The active user with this name and password, or ``None``; every attempt is recorded.

    :func:`begin_login`, the per-user delay (slept here; the web app waits without holding a
    thread), then :func:`finish_login`. Raises :class:`LoginRefused` past the limits. Commits.
    """
    ticket = begin_login(db, name, ip, limits)
    if ticket.delay:
        time.sleep(ticket.delay)
    return finish_login(db, ticket, password)


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
