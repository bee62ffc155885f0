"""Request dependencies: a database session, the logged-in user, role and CSRF checks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from sqlalchemy.orm import Session

from carealign.review.auth import find_session, tokens_match
from carealign.review.errors import Forbidden
from carealign.review.models import AuthSession, User

#: Cookie holding the session token.
SESSION_COOKIE = "carealign_session"
#: Cookie holding the login form's CSRF token (double-submit, before there is a session).
LOGIN_CSRF_COOKIE = "carealign_login_csrf"
#: Header carrying the session's CSRF token on state-changing JSON requests.
CSRF_HEADER = "X-CSRF-Token"


class NotAuthenticated(Exception):
    """No live session: pages redirect to the login page, the API answers 401."""


class CsrfRejected(Forbidden):
    """A state-changing request without the session's CSRF token."""

    def __init__(self) -> None:
        super().__init__("missing or wrong CSRF token; reload the page and try again")


@dataclass
class Auth:
    """The logged-in user and their session."""

    user: User
    session: AuthSession

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token


def get_db(request: Request) -> Iterator[Session]:
    """A database session for one request."""
    db: Session = request.app.state.sessions()
    try:
        yield db
    finally:
        db.close()


Db = Annotated[Session, Depends(get_db)]


def current_auth(request: Request, db: Db) -> Auth:
    """The logged-in user, or :class:`NotAuthenticated`."""
    row = find_session(db, request.cookies.get(SESSION_COOKIE))
    if row is None:
        raise NotAuthenticated()
    return Auth(row.user, row)


def optional_auth(request: Request, db: Db) -> Auth | None:
    row = find_session(db, request.cookies.get(SESSION_COOKIE))
    return None if row is None else Auth(row.user, row)


def check_csrf(auth: Auth, token: str | None) -> None:
    """Refuse (403) unless ``token`` is the session's CSRF token."""
    if not tokens_match(auth.csrf_token, token):
        raise CsrfRejected()


def require_admin(auth: Auth) -> None:
    if not auth.user.is_admin:
        raise Forbidden("admins only")


def admin_auth(auth: Annotated[Auth, Depends(current_auth)]) -> Auth:
    """The logged-in user, who must be an admin."""
    require_admin(auth)
    return auth


def api_write_auth(
    auth: Annotated[Auth, Depends(current_auth)],
    x_csrf_token: Annotated[str | None, Header(alias=CSRF_HEADER)] = None,
) -> Auth:
    """The logged-in user of a state-changing JSON request, which must carry the CSRF header."""
    check_csrf(auth, x_csrf_token)
    return auth


def api_admin_write_auth(auth: Annotated[Auth, Depends(api_write_auth)]) -> Auth:
    """An admin's state-changing JSON request (CSRF header checked)."""
    require_admin(auth)
    return auth


CurrentAuth = Annotated[Auth, Depends(current_auth)]
AdminAuth = Annotated[Auth, Depends(admin_auth)]
ApiWriteAuth = Annotated[Auth, Depends(api_write_auth)]
ApiAdminWriteAuth = Annotated[Auth, Depends(api_admin_write_auth)]

#: An item id in a URL (database integers are 32-bit on every backend).
ItemId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Item id.")]
#: A user or group name in a URL.
NameParam = Annotated[str, Path(min_length=1, max_length=64)]
#: An export kind in a URL.
ExportKind = Annotated[str, Path(min_length=1, max_length=16)]
