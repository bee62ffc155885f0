"""Admin pages: users, groups (and their safety policies), import, export and the audit log."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from sqlalchemy.orm import Session

from carealign.errors import DataError
from carealign.review import accounts
from carealign.review.audit import Actor, audit_query, record
from carealign.review.errors import InvalidInput, ReviewError
from carealign.review.exports import EXPORT_KINDS, empty_export_message, export_rows
from carealign.review.importing import SourceRows, import_sources
from carealign.review.web.deps import AdminAuth, Auth, Db, ExportKind, NameParam, check_csrf
from carealign.review.web.templating import render

router = APIRouter(prefix="/admin")
AUDIT_PAGE = 100
#: Largest JSONL upload accepted by the import page.
MAX_UPLOAD_BYTES = 64 * 1024 * 1024

Csrf = Annotated[str | None, Form(max_length=200)]


def _groups_list(value: str | None) -> list[str]:
    return [g.strip() for g in (value or "").replace(",", " ").split() if g.strip()]


#: The notices an admin page shows after a change: a fixed text naming an existing user or group.
#: The URL carries only the key and the name, so nobody can make a page say something else.
NOTICES: dict[str, tuple[str, str]] = {
    "user-created": ("user", "User {name} was created."),
    "user-updated": ("user", "User {name} was changed."),
    "group-created": ("group", "Group {name} was created."),
    "group-updated": ("group", "Group {name} was changed."),
}


def notice_text(db: Session, key: str | None, name: str | None) -> str | None:
    """The notice for ``key`` about ``name``, or ``None`` unless both are known (an unknown key,
    or a name that is no existing user or group, shows nothing)."""
    if key not in NOTICES or not name:
        return None
    kind, text = NOTICES[key]
    try:
        (accounts.get_user if kind == "user" else accounts.get_group)(db, name)
    except ReviewError:
        return None
    return text.format(name=name)


NoticeParam = Annotated[str | None, Query(max_length=32, pattern="^[a-z-]*$")]
NoticeName = Annotated[str | None, Query(max_length=64)]


@dataclass(frozen=True)
class AdminPage:
    """An admin page with forms: its template, what it lists, and where it returns after a change."""

    path: str
    template: str
    listing: Callable[[Session], dict[str, Any]]

    def render(
        self,
        request: Request,
        db: Session,
        auth: Auth,
        *,
        notice: str | None = None,
        error: str | None = None,
        entered: dict[str, Any] | None = None,
        status: int = 200,
    ) -> Response:
        ctx = {**self.listing(db), "notice": notice, "error": error, "entered": entered or {}}
        return render(request, self.template, ctx, status_code=status, auth=auth)

    def act(
        self,
        request: Request,
        db: Session,
        auth: Auth,
        csrf_token: str | None,
        change: Callable[[], Any],
        *,
        notice: str,
        name: str,
        entered: dict[str, Any],
    ) -> Response:
        """Run an admin's change from a form: commit it and come back with its notice, or show
        the page again with the reason and what the admin typed (never a password)."""
        check_csrf(auth, csrf_token)
        try:
            change()
            db.commit()
        except ReviewError as exc:
            db.rollback()
            kept = {k: v for k, v in entered.items() if k != "password"}
            return self.render(request, db, auth, error=str(exc), entered=kept, status=exc.status)
        target = accounts.normalize_name(name)
        return RedirectResponse(f"{self.path}?{urlencode({'notice': notice, 'name': target})}", status_code=303)


USERS = AdminPage(
    "/admin/users",
    "admin_users.html",
    lambda db: {"users": accounts.list_users(db), "all_groups": accounts.list_groups(db)},
)
GROUPS = AdminPage("/admin/groups", "admin_groups.html", lambda db: {"groups": accounts.list_groups(db)})


@router.get("/users", summary="Users (admin)")
def users_page(
    request: Request, db: Db, auth: AdminAuth, notice: NoticeParam = None, name: NoticeName = None
) -> Response:
    return USERS.render(request, db, auth, notice=notice_text(db, notice, name))


@router.post("/users", summary="Create a user (admin form)")
def create_user_form(
    request: Request,
    db: Db,
    auth: AdminAuth,
    name: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1024)],
    role: Annotated[str, Form(max_length=20)] = "reviewer",
    groups: Annotated[str | None, Form(max_length=2000)] = None,
    csrf_token: Csrf = None,
) -> Response:
    return USERS.act(
        request,
        db,
        auth,
        csrf_token,
        lambda: accounts.create_user(db, name, password, role, Actor.of(auth.user), groups=_groups_list(groups)),
        notice="user-created",
        name=name,
        entered={"name": name, "role": role, "groups": groups},
    )


@router.post("/users/{name}", summary="Change a user (admin form)")
def update_user_form(
    request: Request,
    db: Db,
    auth: AdminAuth,
    name: NameParam,
    role: Annotated[str | None, Form(max_length=20)] = None,
    groups: Annotated[str | None, Form(max_length=2000)] = None,
    active: Annotated[str | None, Form(pattern="^(yes|no)$")] = None,
    password: Annotated[str | None, Form(max_length=1024)] = None,
    csrf_token: Csrf = None,
) -> Response:
    return USERS.act(
        request,
        db,
        auth,
        csrf_token,
        lambda: accounts.update_user(
            db,
            name,
            Actor.of(auth.user),
            role=role or None,
            groups=_groups_list(groups),  # the form always sends the field; empty means no groups
            active=None if active is None else active == "yes",
            password=password or None,
        ),
        notice="user-updated",
        name=name,
        entered={"target": name, "role": role, "groups": groups, "active": active},
    )


@router.get("/groups", summary="Groups (admin)")
def groups_page(
    request: Request, db: Db, auth: AdminAuth, notice: NoticeParam = None, name: NoticeName = None
) -> Response:
    return GROUPS.render(request, db, auth, notice=notice_text(db, notice, name))


Blind = Annotated[str | None, Form(pattern="^(yes|no)$", description="yes: hide judges' verdicts until decided.")]


@router.post("/groups", summary="Create a group (admin form)")
def create_group_form(
    request: Request,
    db: Db,
    auth: AdminAuth,
    name: Annotated[str, Form(max_length=200)],
    reviews_required: Annotated[int, Form(ge=1, le=2)] = 1,
    policy: Annotated[str | None, Form(max_length=20_000)] = None,
    blind: Blind = None,
    csrf_token: Csrf = None,
) -> Response:
    return GROUPS.act(
        request,
        db,
        auth,
        csrf_token,
        lambda: accounts.create_group(
            db,
            name,
            Actor.of(auth.user),
            reviews_required=reviews_required,
            policy_text=policy,
            blind=blind == "yes",
        ),
        notice="group-created",
        name=name,
        entered={"name": name, "reviews_required": reviews_required, "policy": policy, "blind": blind},
    )


@router.post("/groups/{name}", summary="Change a group's reviews, blind review and safety policy (admin form)")
def update_group_form(
    request: Request,
    db: Db,
    auth: AdminAuth,
    name: NameParam,
    reviews_required: Annotated[int | None, Form(ge=1, le=2)] = None,
    policy: Annotated[str | None, Form(max_length=20_000)] = None,
    blind: Blind = None,
    csrf_token: Csrf = None,
) -> Response:
    return GROUPS.act(
        request,
        db,
        auth,
        csrf_token,
        lambda: accounts.update_group(
            db,
            name,
            Actor.of(auth.user),
            reviews_required=reviews_required,
            policy_text=policy if policy and policy.strip() else None,
            clear_policy=policy is not None and not policy.strip(),
            blind=None if blind is None else blind == "yes",
        ),
        notice="group-updated",
        name=name,
        entered={"target": name, "reviews_required": reviews_required, "policy": policy, "blind": blind},
    )


@router.get("/import", summary="Import page (admin)")
def import_page(request: Request, db: Db, auth: AdminAuth) -> Response:
    return render(request, "admin_import.html", {"groups": accounts.list_groups(db)}, auth=auth)


def _read_upload(upload: UploadFile) -> list[dict[str, Any]]:
    name = Path(upload.filename or "upload.jsonl").name
    data = upload.file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise DataError(
            f"larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB; import it with the command line", path=name
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError("not UTF-8 text", path=name) from None
    rows: list[dict[str, Any]] = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"broken JSON line ({exc.msg} at column {exc.colno})", path=name, row=i) from None
        if not isinstance(obj, dict):
            raise DataError(f"expected a JSON object, got {type(obj).__name__}", path=name, row=i)
        rows.append(obj)
    if not rows:
        raise DataError("no rows", path=name)
    return rows


@router.post("/import", summary="Import a JSONL file of judged responses (admin form)")
def import_form(
    request: Request,
    db: Db,
    auth: AdminAuth,
    file: Annotated[UploadFile, File()],
    group: Annotated[str, Form(max_length=64)],
    reviews_required: Annotated[int | None, Form(ge=1, le=2)] = None,
    pairs: Annotated[str | None, Form(pattern="^(yes|no)$")] = None,
    max_pairs_per_prompt: Annotated[int, Form(ge=0, le=100)] = 1,
    csrf_token: Csrf = None,
) -> Response:
    check_csrf(auth, csrf_token)
    ctx: dict[str, Any] = {"groups": accounts.list_groups(db)}
    try:
        g = accounts.get_group(db, group)
        name = Path(file.filename or "upload.jsonl").name
        rows = _read_upload(file)
        report = import_sources(
            db,
            [SourceRows(name, Path(name), rows)],
            g,
            Actor.of(auth.user),
            reviews_required=reviews_required,
            pairs=pairs != "no",
            max_pairs_per_prompt=max_pairs_per_prompt,
        )
    except (DataError, ReviewError) as exc:
        db.rollback()
        status = exc.status if isinstance(exc, ReviewError) else 400
        return render(request, "admin_import.html", {**ctx, "error": str(exc)}, status_code=status, auth=auth)
    return render(request, "admin_import.html", {**ctx, "report": report}, auth=auth)


def _export_page(request: Request, db: Session, auth: Auth, message: str | None = None) -> Response:
    groups = accounts.list_groups(db)
    counts: dict[str, int] = {}
    empty: dict[str, str] = {}
    for kind in EXPORT_KINDS:
        for g in [None, *(() if kind == "audit" else groups)]:
            name = g.name if g else None
            key = f"{kind}:{name or ''}"
            counts[key] = sum(1 for _ in export_rows(db, kind, name))
            if not counts[key]:
                empty[key] = empty_export_message(kind, name)
    ctx = {"groups": groups, "kinds": EXPORT_KINDS, "counts": counts, "empty": empty, "message": message}
    return render(request, "admin_export.html", ctx, auth=auth)


@router.get("/export", summary="Export page (admin)")
def export_page(request: Request, db: Db, auth: AdminAuth) -> Response:
    return _export_page(request, db, auth)


def jsonl_download(db: Session, auth: Auth, kind: str, group: str | None) -> StreamingResponse:
    """Stream an export as a JSONL download (recorded in the audit log)."""
    if kind not in EXPORT_KINDS:
        raise InvalidInput(f"export kind {kind!r}: expected one of {', '.join(EXPORT_KINDS)}")
    if group is not None:
        accounts.get_group(db, group)
    rows = list(export_rows(db, kind, group))
    record(
        db,
        Actor.of(auth.user),
        "export",
        target=f"export:{kind}",
        new={"kind": kind, "group": group, "rows": len(rows)},
    )
    db.commit()

    def body() -> Iterator[bytes]:
        for row in rows:
            yield (json.dumps(row, ensure_ascii=False, default=str) + "\n").encode("utf-8")

    filename = quote(f"{kind}{'-' + group if group else ''}.jsonl")
    return StreamingResponse(
        body(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{filename}", "X-Export-Rows": str(len(rows))},
    )


@router.get("/export/{kind}.jsonl", summary="Download an export (admin; an empty one shows why instead)")
def export_download(
    request: Request,
    db: Db,
    auth: AdminAuth,
    kind: ExportKind,
    group: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    if kind in EXPORT_KINDS and next(iter(export_rows(db, kind, group or None)), None) is None:
        if group:
            accounts.get_group(db, group)  # 404 for an unknown group, not "nothing to export"
        return _export_page(request, db, auth, message=empty_export_message(kind, group or None))
    return jsonl_download(db, auth, kind, group or None)


@router.get("/audit", summary="Audit log (admin)")
def audit_page(
    request: Request,
    db: Db,
    auth: AdminAuth,
    item: Annotated[str | None, Query(max_length=10, pattern=r"^[0-9]*$")] = None,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    item_id = int(item) if item else None
    q = audit_query(item_id=item_id, actor=actor or None, action=action or None)
    entries = db.scalars(q.limit(AUDIT_PAGE + 1).offset((page - 1) * AUDIT_PAGE)).all()
    ctx = {
        "entries": entries[:AUDIT_PAGE],
        "more": len(entries) > AUDIT_PAGE,
        "page": page,
        "filters": {"item": item_id, "actor": actor or "", "action": action or ""},
    }
    return render(request, "audit.html", ctx, auth=auth)


@router.get("/audit.jsonl", summary="Download the audit log (admin)")
def audit_download(db: Db, auth: AdminAuth) -> Response:
    return jsonl_download(db, auth, "audit", None)
