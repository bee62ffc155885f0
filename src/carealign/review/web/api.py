"""The JSON API (``/api/...``): the same operations as the pages, for scripts and load tests.

Authentication is the session cookie set by ``POST /api/login`` (or the login page); every
state-changing request must carry the session's CSRF token in the ``X-CSRF-Token`` header
(``/api/login`` answers it, ``GET /api/me`` repeats it). Requests bodies must be
``application/json``, which a cross-site form cannot send.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import func, select

from carealign.review import accounts, reviewing
from carealign.review.agreement import group_stats
from carealign.review.audit import Actor, audit_query, entry_row
from carealign.review.auth import end_session, start_session
from carealign.review.errors import Forbidden
from carealign.review.importing import SourceRows, import_sources
from carealign.review.queue import QueueFilter, claim_next, progress, queue_count, queue_query, skip
from carealign.review.web.actions import run_item_action
from carealign.review.web.admin import jsonl_download
from carealign.review.web.deps import (
    SESSION_COOKIE,
    AdminAuth,
    ApiAdminWriteAuth,
    ApiWriteAuth,
    CurrentAuth,
    Db,
    ExportKind,
    ItemId,
    NameParam,
)
from carealign.review.web.login import log_in
from carealign.review.web.schemas import (
    AdjudicateIn,
    ChoiceBody,
    GroupIn,
    GroupPatch,
    ImportIn,
    LoginIn,
    NextIn,
    ReviewIn,
    UserIn,
    UserPatch,
)
from carealign.review.web.views import group_view, item_summary, item_view, user_view

router = APIRouter(prefix="/api", tags=["api"])


def _me(auth: Any) -> dict[str, Any]:
    return {"user": user_view(auth.user), "csrf_token": auth.csrf_token}


@router.post("/login", summary="Log in; sets the session cookie and returns the CSRF token")
async def login(request: Request, db: Db, body: LoginIn) -> Response:
    user = await log_in(request, db, body.name, body.password)
    if user is None:
        return JSONResponse({"detail": "wrong user name or password"}, status_code=401)
    token, session = await anyio.to_thread.run_sync(
        start_session, db, user, request.app.state.settings.session_lifetime
    )
    response = JSONResponse({"user": user_view(user), "csrf_token": session.csrf_token})
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(request.app.state.settings.session_lifetime.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=request.app.state.settings.secure_cookies,
        path="/",
    )
    return response


@router.post("/logout", summary="Log out (ends the session)")
def logout(request: Request, db: Db, auth: ApiWriteAuth) -> Response:
    end_session(db, request.cookies.get(SESSION_COOKIE))
    response = JSONResponse({"detail": "logged out"})
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/me", summary="The logged-in user and the session's CSRF token")
def me(auth: CurrentAuth) -> dict[str, Any]:
    return _me(auth)


def _ids(db: Db, auth: Any, group: str | None) -> list[int]:
    visible = accounts.visible_groups(db, auth.user)
    if group is None:
        return [g.id for g in visible]
    g = accounts.get_group(db, group)
    if all(v.id != g.id for v in visible):
        raise Forbidden(f"you are not a member of group {group!r}")
    return [g.id]


@router.get("/queue", summary="Items of a queue tab, highest priority first")
def queue(
    db: Db,
    auth: CurrentAuth,
    group: Annotated[str | None, Query(max_length=64)] = None,
    tab: Annotated[str, Query(pattern="^(review|adjudicate|done)$")] = "review",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    harm_level: Annotated[int | None, Query(ge=0, le=3, description="Only this harm level.")] = None,
    principle: Annotated[str | None, Query(max_length=128, description="Only this principle.")] = None,
    source: Annotated[str | None, Query(max_length=512, description="Only responses from this source.")] = None,
) -> dict[str, Any]:
    ids = _ids(db, auth, group)
    flt = QueueFilter(harm_level, principle or None, source or None)
    items = db.scalars(queue_query(auth.user, ids, tab, flt).limit(limit).offset(offset)).all()
    done = progress(db, auth.user, ids, flt)
    return {
        "total": queue_count(db, auth.user, ids, tab, flt),
        "progress": {"reviewed": done.reviewed, "left": done.left},
        "items": [item_summary(i, auth.user) for i in items],
    }


@router.post("/queue/next", summary="Reserve the next item to review (null when the queue is empty)")
def queue_next(db: Db, auth: ApiWriteAuth, body: NextIn) -> dict[str, Any]:
    flt = QueueFilter(body.harm_level, body.principle or None, body.source or None)
    item = claim_next(db, auth.user, _ids(db, auth, body.group), flt)
    if item is None:
        return {"item": None}
    return {"item": item_view(reviewing.load_item(db, item.id, auth.user), auth.user)}


@router.post("/items/{item_id}/skip", summary="Skip an item: release your reservation; next offers it last")
def skip_item(db: Db, auth: ApiWriteAuth, item_id: ItemId) -> dict[str, Any]:
    skip(db, reviewing.load_item(db, item_id, auth.user, with_verdicts=False), auth.user)
    return {"skipped": item_id}


@router.get("/items/{item_id}", summary="An item with its prompt, response(s), judge verdicts and reviews")
def get_item(db: Db, auth: CurrentAuth, item_id: ItemId) -> dict[str, Any]:
    item = reviewing.load_item(db, item_id, auth.user)
    return item_view(item, auth.user, reviewing.other_responses(db, item))


def _act(db: Db, auth: Any, item_id: int, action: str, body: ReviewIn | ChoiceBody | AdjudicateIn) -> dict[str, Any]:
    """Run an item action with a JSON body; answer the item as it is now, with the action's warnings."""
    result = run_item_action(db, auth, item_id, action, body.version, body.model_dump(exclude={"version"}))
    view = item_view(reviewing.load_item(db, result.item.id, auth.user), auth.user)
    return {**view, "warnings": [result.warning] if result.warning else []}


@router.post("/items/{item_id}/review", summary="Set (or change) your verdict on a label item")
def review(db: Db, auth: ApiWriteAuth, item_id: ItemId, body: ReviewIn) -> dict[str, Any]:
    return _act(db, auth, item_id, "review", body)


@router.post("/items/{item_id}/choice", summary="Choose the better response of a pair item")
def choice(db: Db, auth: ApiWriteAuth, item_id: ItemId, body: ChoiceBody) -> dict[str, Any]:
    return _act(db, auth, item_id, "choice", body)


@router.post("/items/{item_id}/adjudicate", summary="Decide an item whose reviewers disagree")
def adjudicate(db: Db, auth: ApiWriteAuth, item_id: ItemId, body: AdjudicateIn) -> dict[str, Any]:
    return _act(db, auth, item_id, "adjudicate", body)


@router.get("/groups", summary="Your groups with queue counts and reviewer agreement")
def groups(db: Db, auth: CurrentAuth) -> list[dict[str, Any]]:
    return [
        {**group_view(g, with_policy=auth.user.is_admin), "stats": group_stats(db, g).to_dict()}
        for g in accounts.visible_groups(db, auth.user)
    ]


@router.post("/groups", summary="Create a group (admin)", status_code=201)
def create_group(db: Db, auth: ApiAdminWriteAuth, body: GroupIn) -> dict[str, Any]:
    g = accounts.create_group(
        db,
        body.name,
        Actor.of(auth.user),
        reviews_required=body.reviews_required,
        policy_text=body.policy,
        blind=body.blind,
    )
    db.commit()
    return group_view(g, with_policy=True)


@router.patch("/groups/{name}", summary="Change a group's reviews required or safety policy (admin)")
def update_group(db: Db, auth: ApiAdminWriteAuth, name: NameParam, body: GroupPatch) -> dict[str, Any]:
    g = accounts.update_group(
        db,
        name,
        Actor.of(auth.user),
        reviews_required=body.reviews_required,
        policy_text=body.policy if body.policy and body.policy.strip() else None,
        clear_policy=body.policy is not None and not body.policy.strip(),
        blind=body.blind,
    )
    db.commit()
    return group_view(g, with_policy=True)


@router.get("/users", summary="Users (admin)")
def users(db: Db, auth: AdminAuth) -> list[dict[str, Any]]:
    return [user_view(u) for u in accounts.list_users(db)]


@router.post("/users", summary="Create a user (admin)", status_code=201)
def create_user(db: Db, auth: ApiAdminWriteAuth, body: UserIn) -> dict[str, Any]:
    u = accounts.create_user(db, body.name, body.password, body.role, Actor.of(auth.user), groups=body.groups)
    db.commit()
    return user_view(u)


@router.patch("/users/{name}", summary="Change a user's role, groups, active flag or password (admin)")
def update_user(db: Db, auth: ApiAdminWriteAuth, name: NameParam, body: UserPatch) -> dict[str, Any]:
    u = accounts.update_user(
        db,
        name,
        Actor.of(auth.user),
        role=body.role,
        groups=body.groups,
        active=body.active,
        password=body.password,
    )
    db.commit()
    return user_view(u)


@router.post("/import", summary="Import judged responses into a group's queue (admin)")
def import_rows(db: Db, auth: ApiAdminWriteAuth, body: ImportIn) -> dict[str, Any]:
    g = accounts.get_group(db, body.group)
    name = Path(body.source).name or "api"
    report = import_sources(
        db,
        [SourceRows(name, Path(name), body.rows)],
        g,
        Actor.of(auth.user),
        reviews_required=body.reviews_required,
        pairs=body.pairs,
        max_pairs_per_prompt=body.max_pairs_per_prompt,
    )
    return report.to_dict()


@router.get("/export/{kind}", summary="Export labels, dpo, kto, judge or audit rows as JSONL (admin)")
def export(
    db: Db,
    auth: AdminAuth,
    kind: ExportKind,
    group: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    return jsonl_download(db, auth, kind, group)


@router.get("/audit", summary="Audit log entries, newest first (admin)")
def audit(
    db: Db,
    auth: AdminAuth,
    item: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    q = audit_query(item_id=item, actor=actor, action=action)
    total = db.scalar(select(func.count()).select_from(q.order_by(None).subquery())) or 0
    return {"total": total, "entries": [entry_row(e) for e in db.scalars(q.limit(limit).offset(offset))]}


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, auth: CurrentAuth) -> dict[str, Any]:
    """The OpenAPI schema (for logged-in users only: nothing is visible without logging in)."""
    return request.app.openapi()
