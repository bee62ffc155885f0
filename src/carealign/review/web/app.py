"""The FastAPI application factory of the review service."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from typing import Any
from urllib.parse import quote

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from carealign.errors import CarealignError
from carealign.review.auth import LoginLimits, LoginRefused
from carealign.review.db import open_database
from carealign.review.errors import Conflict, ReviewError
from carealign.review.web.deps import NotAuthenticated, optional_auth
from carealign.review.web.gate import RequestGate
from carealign.review.web.templating import render
from carealign.review.web.text import show_controls
from carealign.review.wording import verdict_phrase

#: Response headers that keep pages out of frames and scripts to this origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass
class ReviewSettings:
    """Settings of one review service."""

    db: str = field(metadata={"help": "Database: a SQLite path or URL, or a postgresql:// URL."})
    secure_cookies: bool = field(default=False, metadata={"help": "Mark cookies Secure (serve over HTTPS)."})
    session_lifetime: timedelta = field(default=timedelta(hours=12), metadata={"help": "Login session lifetime."})
    login_limits: LoginLimits = field(default_factory=LoginLimits, metadata={"help": "Failed-login rate limits."})
    migrate: bool = field(default=True, metadata={"help": "Bring the schema up to date on start."})
    trusted_proxies: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For and X-Forwarded-Proto "
            "are believed; empty: the TCP peer is the client."
        },
    )
    threads: int = field(
        default=int(os.environ.get("CAREALIGN_REVIEW_THREADS", "8")),
        metadata={"help": "Worker threads for requests (more only adds contention for the GIL and the database)."},
    )


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP response (unless already set)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in self.headers if k not in present
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def create_app(settings: ReviewSettings | str) -> FastAPI:
    """Build the review app for a database (migrated forward on creation unless ``migrate`` is off)."""
    if isinstance(settings, str):
        settings = ReviewSettings(db=settings)
    engine, sessions = open_database(settings.db, migrate=settings.migrate)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        yield
        engine.dispose()

    app = FastAPI(
        title="carealign review",
        description="Clinician review of healthcare assistant responses: labels, corrections, pairwise choices.",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = sessions
    package = resources.files("carealign.review")
    templates = Jinja2Templates(directory=str(package.joinpath("templates")))
    templates.env.globals["harm_class"] = lambda lv: f"harm harm-{lv if lv is not None else 'unknown'}"
    templates.env.globals["verdict_phrase"] = verdict_phrase
    templates.env.filters["bidi"] = show_controls
    app.state.templates = templates
    app.mount("/static", StaticFiles(directory=str(package.joinpath("static"))), name="static")

    app.add_middleware(RequestGate, sessions=sessions)  # innermost of the three: runs after the others
    app.add_middleware(SecurityHeaders)
    if settings.trusted_proxies:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))  # outermost

    _install_handlers(app)

    from carealign.review.web import admin, api, pages

    app.include_router(pages.router)
    app.include_router(admin.router)
    app.include_router(api.router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok"}

    return app


def _error_page(request: Request, status: int, message: str) -> Response:
    db = request.app.state.sessions()
    try:
        auth = optional_auth(request, db)
        return render(request, "error.html", {"status": status, "message": message}, status_code=status, auth=auth)
    finally:
        db.close()


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotAuthenticated)
    async def not_authenticated(request: Request, _exc: NotAuthenticated) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": "not logged in"}, status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(LoginRefused)
    async def login_refused(request: Request, exc: LoginRefused) -> Response:
        headers = {"Retry-After": str(exc.retry_after)}
        if _is_api(request):
            return JSONResponse({"detail": str(exc)}, status_code=429, headers=headers)
        response = _error_page(request, 429, str(exc))
        response.headers.update(headers)
        return response

    @app.exception_handler(ReviewError)
    async def review_error(request: Request, exc: ReviewError) -> Response:
        if _is_api(request):
            body: dict[str, Any] = {"detail": str(exc)}
            if isinstance(exc, Conflict):
                body["current"] = exc.current
            return JSONResponse(body, status_code=exc.status)
        return _error_page(request, exc.status, str(exc))

    @app.exception_handler(CarealignError)
    async def carealign_error(request: Request, exc: CarealignError) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": str(exc)}, status_code=400)
        return _error_page(request, 400, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        response = _error_page(request, exc.status_code, str(exc.detail))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        if _is_api(request):
            return JSONResponse({"detail": errors}, status_code=422)
        message = "; ".join(f"{'.'.join(str(x) for x in e['loc'][1:])}: {e['msg']}" for e in errors)
        return _error_page(request, 422, f"bad input: {message}")
