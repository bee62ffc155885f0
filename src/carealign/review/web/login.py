"""Logging in from the web: the client's address, the login limits and the per-user delay.

The delay before a password check (see :class:`carealign.review.auth.LoginLimits`) is awaited
on the event loop, so a flood of attempts for one name holds no worker thread; the database
work and the Argon2id check run in worker threads.
"""

from __future__ import annotations

import anyio
import anyio.to_thread
from fastapi import Request
from sqlalchemy.orm import Session

from carealign.review.auth import begin_login, finish_login
from carealign.review.models import User


def client_address(request: Request) -> str:
    """The client's address: the TCP peer's, or the forwarded client's when the peer is a trusted
    proxy (uvicorn's proxy-headers middleware has rewritten it by then)."""
    return request.client.host if request.client else "unknown"


async def log_in(request: Request, db: Session, name: str, password: str) -> User | None:
    """The user with this name and password, or ``None``; raises ``LoginRefused`` past the limits."""
    limits = request.app.state.settings.login_limits
    ticket = await anyio.to_thread.run_sync(begin_login, db, name, client_address(request), limits)
    if ticket.delay:
        await anyio.sleep(ticket.delay)
    return await anyio.to_thread.run_sync(finish_login, db, ticket, password)
