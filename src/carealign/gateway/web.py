"""The review app's gateway page (admins): the figures of ``carealign gateway stats`` as plots, the
flagged exchanges, and a form to set a flagged prompt's harm level (which the export then prefers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from carealign.gateway.export import set_reviewed_harm_level
from carealign.gateway.models import Exchange
from carealign.gateway.stats import gateway_stats, stats_plots
from carealign.review.audit import Actor
from carealign.review.web.deps import AdminAuth, Db, check_csrf
from carealign.review.web.templating import render

router = APIRouter(prefix="/admin/gateway")
#: Flagged exchanges listed on the page.
FLAGGED_SHOWN = 50


@router.get("", summary="Gateway traffic, verdicts, flags, guard interventions and policies (admin)")
def gateway_page(
    request: Request,
    db: Db,
    auth: AdminAuth,
    since: Annotated[str | None, Query(max_length=32)] = None,
    group: Annotated[str | None, Query(max_length=64)] = None,
    done: Annotated[str | None, Query(pattern="^(saved)$")] = None,
) -> Response:
    stats = gateway_stats(db, since=since or None, group=group or None)
    flagged = db.scalars(
        select(Exchange).where(Exchange.review_item_id.is_not(None)).order_by(Exchange.id.desc()).limit(FLAGGED_SHOWN)
    ).all()
    ctx = {
        "stats": stats,
        "plots": stats_plots(stats) if stats.exchanges else {},
        "flagged": flagged,
        "filters": {"since": since or "", "group": group or ""},
        "message": "harm level saved" if done else None,
    }
    return render(request, "gateway.html", ctx, auth=auth)


@router.post("/exchanges/{exchange_id}/harm", summary="Set a logged prompt's harm level (admin form)")
def set_harm_form(
    db: Db,
    auth: AdminAuth,
    exchange_id: int,
    harm_level: Annotated[str, Form(pattern="^(|[0-3])$")],
    csrf_token: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    check_csrf(auth, csrf_token)
    set_reviewed_harm_level(db, exchange_id, int(harm_level) if harm_level else None, Actor.of(auth.user))
    db.commit()
    return RedirectResponse("/admin/gateway?done=saved", status_code=303)
