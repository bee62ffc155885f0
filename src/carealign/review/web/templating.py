"""Page rendering shared by the review app's routers (kept apart from the app factory, which imports them)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200, auth: Any = None
) -> Response:
    """Render a page template with the logged-in user, their CSRF token and their groups."""
    ctx: dict[str, Any] = {"auth": auth, "user": auth.user if auth else None}
    ctx["csrf_token"] = auth.csrf_token if auth else None
    ctx.update(context or {})
    return request.app.state.templates.TemplateResponse(request, name, ctx, status_code=status_code)
