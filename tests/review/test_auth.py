"""Passwords, sessions and login limits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

from carealign.review import accounts, auth
from carealign.review.auth import (
    LoginLimits,
    LoginRefused,
    authenticate,
    begin_login,
    find_session,
    finish_login,
    start_session,
)
from carealign.review.errors import InvalidInput
from carealign.review.models import AuthSession, LoginAttempt, User, utcnow

from .conftest import CLI, PASSWORD


def test_production_hasher_is_argon2id_with_library_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the hasher as shipped, not the tests' cheap one
    h = auth.hash_password("a long passphrase")
    defaults = PasswordHasher()
    assert h.startswith(f"$argon2id$v=19$m={defaults.memory_cost},t={defaults.time_cost},p={defaults.parallelism}$")
    assert defaults.memory_cost >= 19 * 1024  # at least OWASP's minimum for Argon2id
    assert auth.verify_password(h, "a long passphrase")
    assert not auth.verify_password(h, "a long passphrasf")
    assert not auth.verify_password("not a hash", "x")


def test_passwords_are_never_stored_in_clear(sqlite_store) -> None:  # type: ignore[no-untyped-def]
    with sqlite_store.session() as db:
        user = sqlite_store.user(db, "alice")
        assert PASSWORD not in user.password_hash and user.password_hash.startswith("$argon2id$")
        with pytest.raises(InvalidInput, match="at least 8"):
            accounts.create_user(db, "short", "1234567", "reviewer", CLI)
        with pytest.raises(InvalidInput, match="expected reviewer or admin"):
            accounts.create_user(db, "x", PASSWORD, "superuser", CLI)


def test_rate_limits_per_user_and_address_and_per_address(sqlite_store) -> None:  # type: ignore[no-untyped-def]
    limits = LoginLimits(
        per_user_address=3, per_address=5, user_delay_after=3, user_delay=0.0, window=timedelta(minutes=10)
    )
    with sqlite_store.session() as db:
        for _ in range(3):
            assert authenticate(db, "alice", "wrong", "10.0.0.1", limits) is None
        with pytest.raises(LoginRefused) as err:
            authenticate(db, "alice", PASSWORD, "10.0.0.1", limits)  # even the right password, from there
        assert 0 < err.value.retry_after <= 601
        # from elsewhere alice still logs in: failures by others never lock her out
        assert authenticate(db, "alice", PASSWORD, "10.0.0.2", limits).name == "alice"
        # failures from one address count against every name tried from it
        assert authenticate(db, "bob", "wrong", "10.0.0.1", limits) is None
        assert authenticate(db, "carol", "wrong", "10.0.0.1", limits) is None
        with pytest.raises(LoginRefused):
            authenticate(db, "dave", PASSWORD, "10.0.0.1", limits)
        assert authenticate(db, "dave", PASSWORD, "10.0.0.9", limits).name == "dave"
        # the window moves on
        db.execute(update(LoginAttempt).values(at=utcnow() - timedelta(minutes=11)))
        db.commit()
        assert authenticate(db, "alice", PASSWORD, "10.0.0.1", limits).name == "alice"
        attempts = db.scalars(select(LoginAttempt)).all()
        assert len(attempts) == 8 and sum(a.ok for a in attempts) == 3  # refused attempts are not kept


def test_failures_for_a_name_from_anywhere_slow_it_down(sqlite_store) -> None:  # type: ignore[no-untyped-def]
    limits = LoginLimits(per_user_address=5, user_delay_after=3, user_delay=1.5)
    with sqlite_store.session() as db:
        for i in range(3):
            ticket = begin_login(db, "bob", f"192.0.2.{i}", limits)
            assert ticket.delay == 0.0
            assert finish_login(db, ticket, "wrong") is None
        ticket = begin_login(db, "bob", "198.51.100.1", limits)
        assert ticket.delay == 1.5  # slowed, never refused
        assert finish_login(db, ticket, PASSWORD).name == "bob"
        assert begin_login(db, "alice", "192.0.2.0", limits).delay == 0.0  # other names are not slowed


def test_unknown_and_inactive_users_cannot_log_in(sqlite_store) -> None:  # type: ignore[no-untyped-def]
    limits = LoginLimits()
    with sqlite_store.session() as db:
        assert authenticate(db, "nobody", PASSWORD, "ip", limits) is None
        accounts.update_user(db, "bob", CLI, active=False)
        db.commit()
        assert authenticate(db, "bob", PASSWORD, "ip", limits) is None


def test_sessions_expire_and_end_on_password_change(sqlite_store) -> None:  # type: ignore[no-untyped-def]
    with sqlite_store.session() as db:
        alice = sqlite_store.user(db, "alice")
        token, row = start_session(db, alice, timedelta(hours=1))
        assert len(token) >= 40 and row.id != token and len(row.csrf_token) >= 40
        assert db.get(AuthSession, token) is None  # only the digest is stored
        assert find_session(db, token).user.name == "alice"
        assert find_session(db, token + "x") is None and find_session(db, None) is None
        db.execute(update(AuthSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.commit()
        assert find_session(db, token) is None
        token2, _ = start_session(db, alice, timedelta(hours=1))
        assert db.scalars(select(AuthSession)).all()[0].expires_at > utcnow()  # the expired one was swept
        accounts.update_user(db, "alice", CLI, password="a brand new password")
        db.commit()
        assert find_session(db, token2) is None
        assert db.scalars(select(User).where(User.name == "alice")).one().password_hash.startswith("$argon2id$")


def test_secure_cookie_setting(sqlite_store) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from carealign.review.web import ReviewSettings, create_app

    app = create_app(ReviewSettings(db=sqlite_store.url, secure_cookies=True))
    c = TestClient(app, base_url="https://testserver")
    r = c.post("/api/login", json={"name": "alice", "password": PASSWORD})
    cookie = r.headers["set-cookie"].lower()
    assert "secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie


def test_the_last_active_admin_cannot_be_demoted_or_deactivated(sqlite_store) -> None:  # type: ignore[no-untyped-def]
    with sqlite_store.session() as db:
        with pytest.raises(InvalidInput, match="last active admin"):
            accounts.update_user(db, "root", CLI, role="reviewer")
        with pytest.raises(InvalidInput, match="last active admin"):
            accounts.update_user(db, "root", CLI, active=False)
        accounts.update_user(db, "alice", CLI, role="admin")
        accounts.update_user(db, "root", CLI, active=False)  # now someone else can still administer
        db.commit()
        assert sqlite_store.user(db, "root").active is False
