"""The request gate: before a request's body is read, who sent it and how large it may be.

Every request that carries a body (POST, PUT, PATCH, DELETE) passes here before routing:

- without a live session, only the login endpoints accept a body, up to
  :data:`PUBLIC_BODY_LIMIT`; anything else is answered at once (401 for the JSON API, a
  redirect to the login page for pages) without reading the body, so a malformed or huge body
  from a stranger costs nothing;
- with a session, bodies may be up to :data:`SESSION_BODY_LIMIT`, and an admin's import up to
  :data:`UPLOAD_BODY_LIMIT`;
- a body over its limit gets 413, from its ``Content-Length`` before a byte is read, or as soon
  as a chunked body (read here, up to the limit, before the app sees it) passes the limit.

A page form posted after the session expired is sent back to the page it came from (``next``),
never to the POST URL, and the login page says that the unsaved input is kept in the browser
(``static/review.js`` restores it).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import anyio
import anyio.to_thread
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from carealign.review.auth import token_digest
from carealign.review.models import AuthSession, Role, User, utcnow

#: Largest body accepted without a session (the login form and ``/api/login``).
PUBLIC_BODY_LIMIT = 16 * 1024
#: Largest body of a logged-in user's request (a form with a long correction, percent-encoded).
SESSION_BODY_LIMIT = 4 * 1024 * 1024
#: Largest body of an admin's import (the import page's JSONL upload, ``/api/import``).
UPLOAD_BODY_LIMIT = 64 * 1024 * 1024 + 64 * 1024

PUBLIC_PATHS = frozenset({"/login", "/api/login"})
UPLOAD_PATHS = frozenset({"/admin/import", "/api/import"})
SESSION_COOKIE = "carealign_session"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ITEM_ACTION = re.compile(r"^/items/(\d{1,10})/(review|choice|adjudicate|release)$")
_ADMIN_TARGET = re.compile(r"^/admin/(users|groups)/[^/]+$")


def return_page(path: str) -> str:
    """The page a form posted to ``path`` was sent from (where to go after logging in again)."""
    m = _ITEM_ACTION.match(path)
    if m:
        return f"/items/{m.group(1)}" + ("/adjudicate" if m.group(2) == "adjudicate" else "")
    m = _ADMIN_TARGET.match(path)
    if m:
        return f"/admin/{m.group(1)}"
    if path in ("/admin/users", "/admin/groups", "/admin/import"):
        return path
    return "/queue"


def _human_size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n >= 1024 * 1024 else f"{n // 1024} KiB"


class RequestGate:
    """ASGI middleware: session check and body limit before a request body is read (see the module docstring)."""

    def __init__(self, app: ASGIApp, sessions: sessionmaker[Session]) -> None:
        self.app = app
        self.sessions = sessions
        # its own worker threads: the session lookup does not queue behind the request handlers
        self.limiter = anyio.CapacityLimiter(4)

    def _role(self, token: str | None) -> str | None:
        """The role of the live session's user (``None`` without a live session)."""
        if not token or len(token) > 128:
            return None
        with self.sessions() as db:
            row = db.execute(
                select(AuthSession.expires_at, User.role, User.active)
                .join(User, User.id == AuthSession.user_id)
                .where(AuthSession.id == token_digest(token))
            ).first()
        if row is None or row.expires_at <= utcnow() or not row.active:
            return None
        return str(row.role)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        path = scope["path"]
        api = path.startswith("/api/")
        if path in PUBLIC_PATHS:
            limit = PUBLIC_BODY_LIMIT
        else:
            token = request.cookies.get(SESSION_COOKIE)
            role = await anyio.to_thread.run_sync(self._role, token, limiter=self.limiter)
            if role is None:
                declared = _declared_length(scope)
                too_large = declared > PUBLIC_BODY_LIMIT if declared is not None else await _exceeds(receive)
                if too_large:
                    await self._too_large(scope, receive, send, PUBLIC_BODY_LIMIT, api)
                    return
                await self._not_logged_in(path, api)(scope, receive, send)
                return
            upload = path in UPLOAD_PATHS and role == Role.ADMIN.value
            limit = UPLOAD_BODY_LIMIT if upload else SESSION_BODY_LIMIT
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await self._too_large(scope, receive, send, limit, api)
            return
        await self._limited(scope, receive, send, limit, api)

    async def _limited(self, scope: Scope, receive: Receive, send: Send, limit: int, api: bool) -> None:
        """Pass the request on. A body without a ``Content-Length`` (chunked) is read here first, up
        to ``limit``, and handed on from memory; the server holds a declared length to its word."""
        if _declared_length(scope) is not None:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                await self._too_large(scope, receive, send, limit, api)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # the client's disconnect, when it comes
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    def _not_logged_in(path: str, api: bool) -> Response:
        if api:
            return JSONResponse({"detail": "not logged in"}, status_code=401)
        if path == "/logout":
            return RedirectResponse("/login?next=%2Fqueue", status_code=303)
        return RedirectResponse(f"/login?next={quote(return_page(path), safe='')}&expired=1", status_code=303)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int, api: bool) -> None:
        message = f"request body too large: at most {_human_size(limit)} here"
        headers = {"Connection": "close"}
        response: Response
        if api:
            response = JSONResponse({"detail": message}, status_code=413, headers=headers)
        else:
            templates: Any = scope["app"].state.templates
            ctx = {"status": 413, "message": message, "user": None, "auth": None, "csrf_token": None}
            response = templates.TemplateResponse(Request(scope), "error.html", ctx, status_code=413, headers=headers)
        await response(scope, receive, send)


async def _exceeds(receive: Receive, limit: int = PUBLIC_BODY_LIMIT) -> bool:
    """Read a body of unknown length (chunked) up to ``limit``; whether it is longer."""
    received = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return False
        received += len(message.get("body", b""))
        if received > limit:
            return True
        if not message.get("more_body", False):
            return False


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
