"""Pages for reviewers: log in and out, the queue, the review, pairwise and adjudication pages, group agreement."""

from __future__ import annotations

import secrets
from typing import Annotated, Any
from urllib.parse import urlencode

import anyio.to_thread
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from carealign.domain import HARM_LEVELS
from carealign.review import accounts, reviewing
from carealign.review.agreement import group_stats
from carealign.review.auth import end_session, start_session, tokens_match
from carealign.review.errors import Conflict, Forbidden, InvalidInput
from carealign.review.queue import (
    NO_FILTER,
    TABS,
    QueueFilter,
    claim_next_id,
    filter_options,
    progress,
    queue_count,
    queue_query,
    release,
    skip,
)
from carealign.review.web.actions import run_item_action
from carealign.review.web.deps import LOGIN_CSRF_COOKIE, SESSION_COOKIE, CurrentAuth, Db, ItemId, check_csrf
from carealign.review.web.login import log_in
from carealign.review.web.templating import render
from carealign.review.web.views import item_summary, item_view

router = APIRouter()
PAGE_SIZE = 50

Csrf = Annotated[str | None, Form(max_length=200)]
Version = Annotated[int, Form(ge=1, le=2**31 - 1)]
Then = Annotated[str, Form(pattern="^(stay|next)$")]


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/queue"


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int, samesite: str) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite=samesite,  # type: ignore[arg-type]
        secure=request.app.state.settings.secure_cookies,
        path="/",
    )


@router.get("/", include_in_schema=False)
def home() -> RedirectResponse:
    return RedirectResponse("/queue", status_code=303)


@router.get("/login", summary="Login page")
def login_page(
    request: Request,
    next: Annotated[str | None, Query(max_length=500)] = None,
    expired: Annotated[int | None, Query(ge=0, le=1)] = None,
) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = render(request, "login.html", {"login_csrf": token, "next": _safe_next(next), "expired": bool(expired)})
    _set_cookie(request, response, LOGIN_CSRF_COOKIE, token, 3600, "strict")
    return response


@router.post("/login", summary="Log in (form)")
async def login_form(
    request: Request,
    db: Db,
    name: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Csrf = None,
    next: Annotated[str | None, Form(max_length=500)] = None,
    expired: Annotated[int | None, Form(ge=0, le=1)] = None,
) -> Response:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not tokens_match(cookie, csrf_token):
        raise Forbidden("the login form expired or was not sent from this site; reload the page and log in again")
    user = await log_in(request, db, name, password)
    if user is None:
        ctx = {
            "login_csrf": cookie,
            "next": _safe_next(next),
            "error": "wrong user name or password",
            "name": name,
            "expired": bool(expired),
        }
        return render(request, "login.html", ctx, status_code=401)
    token, _ = await anyio.to_thread.run_sync(start_session, db, user, request.app.state.settings.session_lifetime)
    response = RedirectResponse(_safe_next(next), status_code=303)
    lifetime = int(request.app.state.settings.session_lifetime.total_seconds())
    _set_cookie(request, response, SESSION_COOKIE, token, lifetime, "lax")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/logout", summary="Log out (form)")
def logout_form(request: Request, db: Db, auth: CurrentAuth, csrf_token: Csrf = None) -> Response:
    check_csrf(auth, csrf_token)
    end_session(db, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _group_ids(db: Db, auth: Any, group: str | None) -> tuple[list[int], Any]:
    visible = accounts.visible_groups(db, auth.user)
    if group:
        chosen = next((g for g in visible if g.name == group), None)
        if chosen is None:
            accounts.get_group(db, group)  # 404 when it does not exist
            raise Forbidden(f"you are not a member of group {group!r}")
        return [chosen.id], chosen
    return [g.id for g in visible], None


HarmParam = Annotated[str | None, Query(pattern="^[0-3]?$", description="Only this harm level (0-3).")]
PrincipleParam = Annotated[str | None, Query(max_length=128, description="Only this CARES principle.")]
SourceParam = Annotated[str | None, Query(max_length=512, description="Only responses from this source.")]


def query_filter(harm: HarmParam = None, principle: PrincipleParam = None, source: SourceParam = None) -> QueueFilter:
    """The queue filter of a page's query string."""
    return QueueFilter(int(harm) if harm else None, principle or None, source or None)


def form_filter(
    harm: Annotated[str | None, Form(pattern="^[0-3]?$")] = None,
    principle: Annotated[str | None, Form(max_length=128)] = None,
    source: Annotated[str | None, Form(max_length=512)] = None,
) -> QueueFilter:
    """The queue filter a form carries along (so that "next" stays within it)."""
    return QueueFilter(int(harm) if harm else None, principle or None, source or None)


QueryFilter = Annotated[QueueFilter, Depends(query_filter)]
FormFilter = Annotated[QueueFilter, Depends(form_filter)]


def _queue_url(group: str | None, flt: QueueFilter, **extra: object) -> str:
    params = {**({"group": group} if group else {}), **flt.params(), **{k: str(v) for k, v in extra.items()}}
    return "/queue" + (f"?{urlencode(params)}" if params else "")


def _item_url(item_id: int, flt: QueueFilter) -> str:
    return f"/items/{item_id}" + (f"?{urlencode(flt.params())}" if flt else "")


@router.get("/queue", summary="Review queue")
def queue_page(
    request: Request,
    db: Db,
    auth: CurrentAuth,
    flt: QueryFilter,
    group: Annotated[str | None, Query(max_length=64)] = None,
    tab: Annotated[str, Query(pattern="^(review|adjudicate|done)$")] = "review",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    saved: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
    empty: Annotated[int | None, Query(ge=0, le=1)] = None,
) -> Response:
    ids, chosen = _group_ids(db, auth, group)
    q = queue_query(auth.user, ids, tab, flt).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    items = db.scalars(q).all()
    counts = {t: queue_count(db, auth.user, ids, t, flt) for t in TABS}
    ctx = {
        "groups": accounts.visible_groups(db, auth.user),
        "group": chosen,
        "tab": tab,
        "items": [item_summary(i, auth.user) for i in items],
        "counts": counts,
        "page": page,
        "pages": max(1, -(-counts[tab] // PAGE_SIZE)),
        "saved": saved,
        "empty": empty,
        "filter": flt,
        "filter_params": flt.params(),
        "options": filter_options(db, ids),
        "progress": progress(db, auth.user, ids, flt),
        "harm_levels": HARM_LEVELS,
    }
    return render(request, "queue.html", ctx, auth=auth)


@router.post("/queue/next", summary="Take the next item to review (form)")
def next_form(
    db: Db,
    auth: CurrentAuth,
    flt: FormFilter,
    csrf_token: Csrf = None,
    group: Annotated[str | None, Form(max_length=64)] = None,
) -> RedirectResponse:
    check_csrf(auth, csrf_token)
    ids, _ = _group_ids(db, auth, group or None)
    item_id = claim_next_id(db, auth.user, ids, flt)
    if item_id is None:
        return RedirectResponse(_queue_url(group, flt, empty=1), status_code=303)
    return RedirectResponse(_item_url(item_id, flt), status_code=303)


@router.post("/items/{item_id}/skip", summary="Skip an item: release it and take the next one (form)")
def skip_form(
    db: Db,
    auth: CurrentAuth,
    item_id: ItemId,
    flt: FormFilter,
    csrf_token: Csrf = None,
) -> RedirectResponse:
    check_csrf(auth, csrf_token)
    item = reviewing.load_item(db, item_id, auth.user, with_verdicts=False)
    group_id, group_name = item.group_id, item.group.name
    skip(db, item, auth.user)
    nxt = claim_next_id(db, auth.user, [group_id], flt)
    if nxt == item_id:  # nothing else is left: leave the skipped item free for others
        release(db, item_id, auth.user)
    if nxt is None or nxt == item_id:
        return RedirectResponse(_queue_url(group_name, flt, empty=1), status_code=303)
    return RedirectResponse(_item_url(nxt, flt), status_code=303)


def _item_page(
    request: Request,
    db: Db,
    auth: Any,
    item_id: int,
    *,
    status_code: int = 200,
    message: str | None = None,
    conflict: dict[str, Any] | None = None,
    entered: dict[str, Any] | None = None,
    saved: bool = False,
    warning: str | None = None,
    adjudication: bool = False,
    flt: QueueFilter = NO_FILTER,
) -> Response:
    db.expire_all()
    item = reviewing.load_item(db, item_id, auth.user)
    view = item_view(item, auth.user, reviewing.other_responses(db, item))
    name = "adjudicate.html" if adjudication else ("pair.html" if item.kind == "pair" else "item.html")
    ctx = {
        "item": view,
        "message": message,
        "conflict": conflict,
        "entered": entered or {},
        "saved": saved,
        "warning": warning,
        "filter_params": flt.params(),
        "progress": progress(db, auth.user, [item.group_id], flt),
    }
    return render(request, name, ctx, status_code=status_code, auth=auth)


@router.get("/items/{item_id}", summary="Review page of an item")
def item_page(
    request: Request,
    db: Db,
    auth: CurrentAuth,
    item_id: ItemId,
    flt: QueryFilter,
    saved: Annotated[int | None, Query(ge=0, le=1)] = None,
) -> Response:
    warning = None
    if saved:
        warning = reviewing.correction_warning(reviewing.load_item(db, item_id, auth.user), auth.user)
    return _item_page(request, db, auth, item_id, saved=bool(saved), warning=warning, flt=flt)


def _item_form(
    request: Request,
    db: Db,
    auth: Any,
    item_id: int,
    action: str,
    version: int,
    entered: dict[str, Any],
    csrf_token: str | None,
    then: str = "stay",
    flt: QueueFilter = NO_FILTER,
) -> Response:
    """Run an item action from a form: on success go on (to the next item, or back with "Saved");
    on refusal show the page again with the reason and everything the reviewer typed."""
    check_csrf(auth, csrf_token)
    adjudication = action == "adjudicate"
    try:
        result = run_item_action(db, auth, item_id, action, version, entered)
    except (Conflict, InvalidInput) as exc:
        return _item_page(
            request,
            db,
            auth,
            item_id,
            status_code=exc.status,
            message=str(exc),
            conflict=exc.current if isinstance(exc, Conflict) else None,
            entered=entered,
            adjudication=adjudication,
            flt=flt,
        )
    item = result.item
    if then == "next" and result.warning is None:  # a warning is shown on the item before moving on
        nxt = claim_next_id(db, auth.user, [item.group_id], flt)
        if nxt is not None:
            return RedirectResponse(_item_url(nxt, flt), status_code=303)
        return RedirectResponse(_queue_url(item.group.name, flt, saved=item.id, empty=1), status_code=303)
    return RedirectResponse(f"/items/{item.id}?{urlencode({**flt.params(), 'saved': 1})}", status_code=303)


#: Free text of a form. Its length is checked by the service (so that a refusal keeps the text);
#: the request gate bounds the body.
Text = Annotated[str | None, Form()]
Pick = Annotated[str | None, Form(max_length=20)]


@router.post("/items/{item_id}/review", summary="Set a verdict on a label item (form)")
def review_form(
    request: Request,
    db: Db,
    auth: CurrentAuth,
    item_id: ItemId,
    version: Version,
    flt: FormFilter,
    verdict: Pick = None,
    corrected_response: Text = None,
    note: Text = None,
    csrf_token: Csrf = None,
    then: Then = "stay",
) -> Response:
    entered = {"verdict": verdict, "corrected_response": corrected_response, "note": note}
    return _item_form(request, db, auth, item_id, "review", version, entered, csrf_token, then, flt)


@router.post("/items/{item_id}/choice", summary="Choose the better response of a pair item (form)")
def choice_form(
    request: Request,
    db: Db,
    auth: CurrentAuth,
    item_id: ItemId,
    version: Version,
    flt: FormFilter,
    choice: Pick = None,
    note: Text = None,
    csrf_token: Csrf = None,
    then: Then = "stay",
) -> Response:
    entered = {"choice": choice, "note": note}
    return _item_form(request, db, auth, item_id, "choice", version, entered, csrf_token, then, flt)


@router.get("/items/{item_id}/adjudicate", summary="Adjudication page of an item")
def adjudicate_page(request: Request, db: Db, auth: CurrentAuth, item_id: ItemId) -> Response:
    item = reviewing.load_item(db, item_id, auth.user)
    if not reviewing.can_adjudicate(auth.user, item):
        if item.status == "open":
            raise Conflict(f"item {item_id} is still waiting for reviews")
        raise Forbidden(f"you may not adjudicate item {item_id}")
    return _item_page(request, db, auth, item_id, adjudication=True)


@router.post("/items/{item_id}/adjudicate", summary="Adjudicate an item (form)")
def adjudicate_form(
    request: Request,
    db: Db,
    auth: CurrentAuth,
    item_id: ItemId,
    version: Version,
    verdict: Pick = None,
    choice: Pick = None,
    corrected_response: Text = None,
    note: Text = None,
    csrf_token: Csrf = None,
) -> Response:
    entered = {"verdict": verdict, "choice": choice, "corrected_response": corrected_response, "note": note}
    return _item_form(request, db, auth, item_id, "adjudicate", version, entered, csrf_token)


@router.get("/groups", summary="Groups: queue counts and reviewer agreement")
def groups_page(request: Request, db: Db, auth: CurrentAuth) -> Response:
    stats = [group_stats(db, g) for g in accounts.visible_groups(db, auth.user)]
    return render(request, "groups.html", {"stats": stats}, auth=auth)
