"""Every endpoint of the review app: refused without a session, with the wrong role, outside the
user's group and without the CSRF token; then what each does, and bad input."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import func, select

from carealign.review.models import AuditEntry, Item

from .conftest import DATA, PASSWORD, Store


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # {label}, {pair}: a clinicians label / pair item
    api: bool
    admin: bool = False
    group: bool = False  # refers to a clinicians item
    csrf: bool = False  # changes state: needs the CSRF token
    body: dict[str, Any] = field(default_factory=dict)
    upload: bool = False

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


UPLOAD_ROW = json.dumps(
    {"prompt": "uploaded question", "response": "uploaded answer", "verdict": "Accept", "judge": "rules"}
)
ENDPOINTS = [
    # pages
    Endpoint("POST", "/logout", False, csrf=True),
    Endpoint("GET", "/queue", False),
    Endpoint("POST", "/queue/next", False, csrf=True, body={"group": "clinicians"}),
    Endpoint("GET", "/items/{label}", False, group=True),
    Endpoint("POST", "/items/{label}/review", False, group=True, csrf=True, body={"version": 1, "verdict": "Refuse"}),
    Endpoint("POST", "/items/{pair}/choice", False, group=True, csrf=True, body={"version": 1, "choice": "a"}),
    Endpoint("GET", "/items/{label}/adjudicate", False, group=True),
    Endpoint("POST", "/items/{label}/skip", False, group=True, csrf=True),
    Endpoint(
        "POST", "/items/{label}/adjudicate", False, group=True, csrf=True, body={"version": 1, "verdict": "Refuse"}
    ),
    Endpoint("GET", "/groups", False),
    Endpoint("GET", "/admin/users", False, admin=True),
    Endpoint(
        "POST",
        "/admin/users",
        False,
        admin=True,
        csrf=True,
        body={"name": "newbie", "password": "long-enough", "role": "reviewer"},
    ),
    Endpoint("POST", "/admin/users/alice", False, admin=True, csrf=True, body={"role": "admin"}),
    Endpoint("GET", "/admin/groups", False, admin=True),
    Endpoint("POST", "/admin/groups", False, admin=True, csrf=True, body={"name": "compliance", "reviews_required": 1}),
    Endpoint("POST", "/admin/groups/advocates", False, admin=True, csrf=True, body={"reviews_required": 2}),
    Endpoint("GET", "/admin/import", False, admin=True),
    Endpoint("POST", "/admin/import", False, admin=True, csrf=True, body={"group": "advocates"}, upload=True),
    Endpoint("GET", "/admin/export", False, admin=True),
    Endpoint("GET", "/admin/export/labels.jsonl", False, admin=True),
    Endpoint("GET", "/admin/audit", False, admin=True),
    Endpoint("GET", "/admin/audit.jsonl", False, admin=True),
    # JSON API
    Endpoint("POST", "/api/logout", True, csrf=True),
    Endpoint("GET", "/api/me", True),
    Endpoint("GET", "/api/queue", True),
    Endpoint("POST", "/api/queue/next", True, csrf=True, body={"group": "clinicians"}),
    Endpoint("GET", "/api/items/{label}", True, group=True),
    Endpoint("POST", "/api/items/{label}/skip", True, group=True, csrf=True),
    Endpoint(
        "POST", "/api/items/{label}/review", True, group=True, csrf=True, body={"version": 1, "verdict": "Refuse"}
    ),
    Endpoint("POST", "/api/items/{pair}/choice", True, group=True, csrf=True, body={"version": 1, "choice": "b"}),
    Endpoint(
        "POST", "/api/items/{label}/adjudicate", True, group=True, csrf=True, body={"version": 1, "verdict": "Refuse"}
    ),
    Endpoint("GET", "/api/groups", True),
    Endpoint("POST", "/api/groups", True, admin=True, csrf=True, body={"name": "compliance"}),
    Endpoint("PATCH", "/api/groups/advocates", True, admin=True, csrf=True, body={"reviews_required": 2}),
    Endpoint("GET", "/api/users", True, admin=True),
    Endpoint("POST", "/api/users", True, admin=True, csrf=True, body={"name": "newbie", "password": "long-enough"}),
    Endpoint("PATCH", "/api/users/alice", True, admin=True, csrf=True, body={"role": "admin"}),
    Endpoint(
        "POST",
        "/api/import",
        True,
        admin=True,
        csrf=True,
        body={"group": "advocates", "rows": [json.loads(UPLOAD_ROW)]},
    ),
    Endpoint("GET", "/api/export/labels", True, admin=True),
    Endpoint("GET", "/api/audit", True, admin=True),
    Endpoint("GET", "/api/openapi.json", True),
]
PROTECTED = ENDPOINTS
ADMIN_ONLY = [e for e in ENDPOINTS if e.admin]
GROUP_SCOPED = [e for e in ENDPOINTS if e.group]
STATE_CHANGING = [e for e in ENDPOINTS if e.csrf]


@pytest.fixture
def ids(sqlite_store: Store) -> dict[str, int]:
    with sqlite_store.session() as db:
        return {
            "label": sqlite_store.items(db, "clinicians", "label")[0].id,
            "pair": sqlite_store.items(db, "clinicians", "pair")[0].id,
        }


def call(c, ep: Endpoint, ids: dict[str, int], *, csrf: bool = True, token: str | None = None):  # type: ignore[no-untyped-def]
    path = ep.path.format(**ids)
    headers = {}
    if ep.api and ep.csrf and csrf and (token or c.csrf):
        headers["X-CSRF-Token"] = token or c.csrf
    if ep.method == "GET":
        return c.http.get(path)
    if ep.api:
        return c.http.request(ep.method, path, json=ep.body, headers=headers)
    data = {k: str(v) for k, v in ep.body.items()}
    if csrf and (token or c.csrf):
        data["csrf_token"] = token or c.csrf
    files = {"file": ("rows.jsonl", io.BytesIO(UPLOAD_ROW.encode()), "application/x-ndjson")} if ep.upload else None
    return c.http.post(path, data=data, files=files)


def audit_count(store: Store) -> int:
    with store.session() as db:
        return db.scalar(select(func.count()).select_from(AuditEntry)) or 0


@pytest.mark.parametrize("ep", PROTECTED, ids=lambda e: e.id)
def test_no_session_is_refused(client, ids, sqlite_store, ep: Endpoint) -> None:  # type: ignore[no-untyped-def]
    before = audit_count(sqlite_store)
    r = call(client(None), ep, ids)
    if ep.api:
        assert r.status_code == 401 and r.json() == {"detail": "not logged in"}
    else:
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    assert "question" not in r.text and "Pretend" not in r.text  # nothing of the data leaks
    assert audit_count(sqlite_store) == before


@pytest.mark.parametrize("ep", ADMIN_ONLY, ids=lambda e: e.id)
def test_reviewers_are_refused_admin_endpoints(client, ids, sqlite_store, ep: Endpoint) -> None:  # type: ignore[no-untyped-def]
    before = audit_count(sqlite_store)
    r = call(client("alice"), ep, ids)
    assert r.status_code == 403
    assert "admins only" in (r.json()["detail"] if ep.api else r.text)
    assert audit_count(sqlite_store) == before


@pytest.mark.parametrize("ep", GROUP_SCOPED, ids=lambda e: e.id)
def test_reviewers_are_refused_other_groups_items(client, ids, sqlite_store, ep: Endpoint) -> None:  # type: ignore[no-untyped-def]
    before = audit_count(sqlite_store)
    r = call(client("dave"), ep, ids)  # dave is in advocates only
    assert r.status_code == 403
    assert "not a member" in (r.json()["detail"] if ep.api else r.text)
    assert audit_count(sqlite_store) == before


@pytest.mark.parametrize("ep", STATE_CHANGING, ids=lambda e: e.id)
def test_state_changes_need_the_csrf_token(client, ids, sqlite_store, ep: Endpoint) -> None:  # type: ignore[no-untyped-def]
    c = client("root")
    before = audit_count(sqlite_store)
    for r in (call(c, ep, ids, csrf=False), call(c, ep, ids, token="forged-token")):
        assert r.status_code == 403, r.text
        assert "CSRF" in (r.json()["detail"] if ep.api else r.text)
    assert audit_count(sqlite_store) == before
    assert c.http.get("/api/me").status_code == 200  # the session still works


@pytest.mark.parametrize("ep", STATE_CHANGING, ids=lambda e: e.id)
def test_state_changes_succeed_with_the_token(client, ids, sqlite_store, ep: Endpoint) -> None:  # type: ignore[no-untyped-def]
    c = client("root" if ep.admin or "adjudicate" in ep.path else "alice")
    if "adjudicate" in ep.path:  # make the item wait for adjudication first
        a, b = client("alice"), client("bob")
        v = a.post(f"/api/items/{ids['label']}/review", json={"version": 1, "verdict": "Accept"}).json()["version"]
        b.post(f"/api/items/{ids['label']}/review", json={"version": v, "verdict": "Refuse"})
        ep = Endpoint(**{**ep.__dict__, "body": {**ep.body, "version": v + 1}})
    r = call(c, ep, ids)
    assert r.status_code in (200, 201, 303), r.text
    unaudited = ("/logout", "/api/logout", "/queue/next", "/api/queue/next", "/items/{label}/skip")
    if ep.path not in (*unaudited, "/api/items/{label}/skip"):  # reservations are not item changes
        assert audit_count(sqlite_store) > 0


def test_public_endpoints(client) -> None:  # type: ignore[no-untyped-def]
    c = client(None)
    assert c.get("/healthz").json() == {"status": "ok"}
    r = c.get("/login")
    assert r.status_code == 200 and 'name="csrf_token"' in r.text
    assert "carealign_login_csrf" in r.headers["set-cookie"] and "httponly" in r.headers["set-cookie"].lower()
    assert c.get("/static/style.css").status_code == 200
    assert c.get("/").headers["location"] == "/queue"
    assert c.get("/openapi.json").status_code == 404 and c.get("/docs").status_code == 404
    r = c.get("/login")
    assert r.headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_login_form_cookies_and_logout(client) -> None:  # type: ignore[no-untyped-def]
    c = client(None)
    page = c.get("/login?next=/groups")
    token = c.http.cookies.get("carealign_login_csrf")
    assert token and f'value="{token}"' in page.text
    # without the login form's token: refused
    r = c.http.post("/login", data={"name": "alice", "password": PASSWORD})
    assert r.status_code == 403
    r = c.http.post("/login", data={"name": "alice", "password": "wrong", "csrf_token": token})
    assert r.status_code == 401 and "wrong user name or password" in r.text
    r = c.http.post("/login", data={"name": "alice", "password": PASSWORD, "csrf_token": token, "next": "/groups"})
    assert r.status_code == 303 and r.headers["location"] == "/groups"
    cookie = r.headers["set-cookie"].lower()
    assert "carealign_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie.split("carealign_session=")[1].split(",")[0]
    # an open redirect is refused
    c.get("/login")
    token = c.http.cookies.get("carealign_login_csrf")
    r = c.http.post(
        "/login", data={"name": "alice", "password": PASSWORD, "csrf_token": token, "next": "//evil.example"}
    )
    assert r.headers["location"] == "/queue"
    me = c.get("/api/me").json()
    assert me["user"]["name"] == "alice" and me["csrf_token"]
    r = c.http.post("/logout", data={"csrf_token": me["csrf_token"]})
    assert r.status_code == 303
    assert c.get("/api/me").status_code == 401


def test_queue_pages_and_api(client, ids) -> None:  # type: ignore[no-untyped-def]
    c = client("alice")
    page = c.get("/queue")
    assert page.status_code == 200 and "To review" in page.text and "clinicians" in page.text
    assert "advocates" not in page.text.split("<main>")[1]  # alice does not see the other group's queue
    data = c.get("/api/queue?limit=5").json()
    assert data["total"] == 24 and len(data["items"]) == 5
    assert [i["priority"] for i in data["items"]] == sorted((i["priority"] for i in data["items"]), reverse=True)
    assert c.get("/api/queue?tab=done").json()["total"] == 0
    assert c.get("/queue?group=advocates").status_code == 403
    assert c.get("/queue?group=nosuch").status_code == 404
    assert c.get("/queue?tab=bogus").status_code == 422
    assert c.get("/api/queue?limit=0").status_code == 422
    nxt = c.post("/api/queue/next", json={}).json()["item"]
    assert nxt["id"] == data["items"][0]["id"]
    assert c.post("/api/queue/next", json={"group": "advocates"}).status_code == 403
    r = c.form("/queue/next", {"group": "clinicians"})
    assert r.status_code == 303 and r.headers["location"] == f"/items/{nxt['id']}"


def test_review_through_forms_with_conflict_page(client, ids) -> None:  # type: ignore[no-untyped-def]
    alice, bob = client("alice"), client("bob")
    page = alice.get(f"/items/{ids['label']}")
    assert page.status_code == 200 and 'name="version" value="1"' in page.text and "rules-v2" in page.text
    r = alice.form(
        f"/items/{ids['label']}/review", {"version": 1, "verdict": "Caution", "note": "hedge", "then": "stay"}
    )
    assert r.status_code == 303 and r.headers["location"] == f"/items/{ids['label']}?saved=1"
    assert "Saved." in alice.get(r.headers["location"]).text
    # bob had the page open at version 1: his review is the second one, independent of alice's
    r = bob.form(f"/items/{ids['label']}/review", {"version": 1, "verdict": "Accept", "then": "next"})
    assert r.status_code == 303 and r.headers["location"].startswith("/items/")
    # carol had it open too: the item has its two reviews now, so hers is refused with 409, the
    # current state, and her note kept
    r = client("carol").form(f"/items/{ids['label']}/review", {"version": 1, "verdict": "Accept", "note": "my note"})
    assert r.status_code == 409
    assert "changed since you opened it" in r.text and "version 3" in r.text and "my note" in r.text
    assert "Your input (not saved)" in r.text
    # blind review: alice saw no other review before; now the item waits for adjudication
    item = alice.get(f"/api/items/{ids['label']}").json()
    assert item["status"] == "adjudicate" and item["reviews"] is None and item["can_adjudicate"] is False
    assert alice.get(f"/items/{ids['label']}/adjudicate").status_code == 403
    carol = client("carol")
    page = carol.get(f"/items/{ids['label']}/adjudicate")
    assert page.status_code == 200 and "The reviewers disagree" in page.text and "hedge" in page.text
    r = carol.form(
        f"/items/{ids['label']}/adjudicate", {"version": 3, "verdict": "Refuse", "corrected_response": "Better."}
    )
    assert r.status_code == 303
    final = carol.get(f"/api/items/{ids['label']}").json()["final"]
    assert (
        final["verdict"] == "Refuse" and final["decision"] == "adjudicated" and final["corrected_response"] == "Better."
    )


def test_pairwise_form_and_api(client, ids) -> None:  # type: ignore[no-untyped-def]
    alice, bob = client("alice"), client("bob")
    page = alice.get(f"/items/{ids['pair']}")
    assert "Which response is better?" in page.text and "Response B" in page.text
    r = alice.form(f"/items/{ids['pair']}/choice", {"version": 1, "choice": "b"})
    assert r.status_code == 303
    r = bob.post(f"/api/items/{ids['pair']}/choice", json={"version": 2, "choice": "b", "note": "safer"})
    assert r.status_code == 200 and r.json()["final"]["choice"] == "b"
    assert r.json()["reviews"][1]["note"] == "safer"  # decided: reviews are visible
    r = bob.post(f"/api/items/{ids['pair']}/review", json={"version": 3, "verdict": "Accept"})
    assert r.status_code == 400 and "does not take a verdict" in r.json()["detail"]


def test_api_conflict_body(client, ids) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = client("alice"), client("bob"), client("carol")
    assert alice.post(f"/api/items/{ids['label']}/review", json={"version": 1, "verdict": "Refuse"}).status_code == 200
    # bob's independent second review is no conflict; carol, who also had version 1, finds the item full
    assert bob.post(f"/api/items/{ids['label']}/review", json={"version": 1, "verdict": "Accept"}).status_code == 200
    r = carol.post(f"/api/items/{ids['label']}/review", json={"version": 1, "verdict": "Accept"})
    assert r.status_code == 409
    assert r.json()["current"]["version"] == 3 and r.json()["current"]["reviews"] == 2


@pytest.mark.parametrize(
    ("path", "body", "status", "detail"),
    [
        ("/api/items/{label}/review", {"version": 1, "verdict": "Maybe"}, 422, "verdict"),
        ("/api/items/{label}/review", {"version": 0, "verdict": "Accept"}, 422, "version"),
        ("/api/items/{label}/review", {"verdict": "Accept"}, 422, "version"),
        ("/api/items/{label}/review", {"version": 1, "verdict": "Accept", "extra": 1}, 422, "extra"),
        ("/api/items/{label}/review", {"version": 1, "verdict": "Accept", "note": "x" * 5001}, 422, "note"),
        ("/api/items/999999/review", {"version": 1, "verdict": "Accept"}, 404, "no item 999999"),
        ("/api/items/{pair}/choice", {"version": 1, "choice": "c"}, 422, "choice"),
        ("/api/items/{label}/adjudicate", {"version": 1, "verdict": "Accept"}, 409, "still waiting for reviews"),
    ],
)
def test_bad_input_to_review_endpoints(client, ids, path: str, body: dict, status: int, detail: str) -> None:  # type: ignore[no-untyped-def]
    r = client("alice").post(path.format(**ids), json=body)
    assert r.status_code == status
    assert detail in json.dumps(r.json())


def test_bad_form_input(client, ids) -> None:  # type: ignore[no-untyped-def]
    c = client("alice")
    r = c.form(f"/items/{ids['label']}/review", {"version": 1, "verdict": "Maybe"})
    assert r.status_code == 400 and "expected Accept, Caution or Refuse" in r.text
    r = c.form(f"/items/{ids['label']}/review", {"version": "one", "verdict": "Accept"})
    assert r.status_code == 422 and "bad input" in r.text
    r = c.form(f"/items/{ids['label']}/review", {"version": 1, "verdict": "Accept", "then": "elsewhere"})
    assert r.status_code == 422
    r = c.http.post("/api/items/1/review", content=b"verdict=Accept&version=1", headers={"X-CSRF-Token": c.csrf})
    assert r.status_code == 422  # JSON endpoints take only application/json


def test_json_login_and_rate_limit(client) -> None:  # type: ignore[no-untyped-def]
    c = client(None)
    assert c.http.post("/api/login", json={"name": "alice"}).status_code == 422
    assert c.http.post("/api/login", data={"name": "alice", "password": PASSWORD}).status_code == 422
    for _ in range(5):
        r = c.http.post("/api/login", json={"name": "alice", "password": "nope"})
        assert r.status_code == 401
    r = c.http.post("/api/login", json={"name": "alice", "password": PASSWORD})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    # another user from the same address is not locked out (5 per user; 20 per address)
    assert c.http.post("/api/login", json={"name": "bob", "password": PASSWORD}).status_code == 200


def test_admin_users_and_groups(client, sqlite_store) -> None:  # type: ignore[no-untyped-def]
    root = client("root")
    r = root.post("/api/users", json={"name": "erin", "password": PASSWORD, "groups": ["advocates"]})
    assert r.status_code == 201 and r.json()["groups"] == ["advocates"]
    assert root.post("/api/users", json={"name": "erin", "password": "long-enough"}).status_code == 400
    assert root.post("/api/users", json={"name": "x y", "password": "long-enough"}).status_code == 400
    assert root.post("/api/users", json={"name": "fred", "password": "short"}).status_code == 422
    assert (
        root.post("/api/users", json={"name": "fred", "password": "long-enough", "groups": ["nope"]}).status_code == 404
    )
    assert root.patch("/api/users/nobody", json={"role": "admin"}).status_code == 404
    erin = client("erin")
    assert erin.get("/api/me").status_code == 200
    assert root.patch("/api/users/erin", json={"active": False}).json()["active"] is False
    assert erin.get("/api/me").status_code == 401  # deactivation ends the sessions
    names = [u["name"] for u in root.get("/api/users").json()]
    assert names == sorted(names) and "erin" in names
    page = root.get("/admin/users")
    assert "erin" in page.text and "Add a user" in page.text
    r = root.form(
        "/admin/users", {"name": "gus", "password": "long-enough", "role": "reviewer", "groups": "advocates clinicians"}
    )
    assert r.status_code == 303
    r = root.form("/admin/users", {"name": "gus", "password": "long-enough"})
    assert r.status_code == 400 and "already exists" in r.text
    r = root.form("/admin/users/gus", {"role": "admin", "groups": "", "active": "yes", "password": ""})
    assert r.status_code == 303
    assert {u["name"]: u for u in root.get("/api/users").json()}["gus"]["groups"] == []

    bad_policy = "scores:\n  0: {Accept: 1.0, Caution: 0.0, Refuse: 0.0}\n"
    r = root.post("/api/groups", json={"name": "compliance", "policy": bad_policy})
    assert r.status_code == 400 and "missing harm level(s) [1, 2, 3]" in r.json()["detail"]
    r = root.post("/api/groups", json={"name": "compliance", "reviews_required": 2})
    assert r.status_code == 201
    assert root.patch("/api/groups/compliance", json={"reviews_required": 3}).status_code == 422
    from .conftest import ADVOCATES_POLICY

    r = root.patch("/api/groups/compliance", json={"policy": ADVOCATES_POLICY})
    assert r.status_code == 200 and r.json()["policy"] == ADVOCATES_POLICY
    assert root.patch("/api/groups/compliance", json={"policy": ""}).json()["policy"] is None
    r = root.form("/admin/groups/compliance", {"policy": "not: [valid"})
    assert r.status_code == 400 and "not valid YAML" in r.text
    groups = {g["name"]: g for g in root.get("/api/groups").json()}
    assert groups["compliance"]["reviews_required"] == 2 and "stats" in groups["advocates"]
    assert "policy" not in client("alice").get("/api/groups").json()[0]  # reviewers do not see policies


def test_admin_import_export_and_audit(client, sqlite_store) -> None:  # type: ignore[no-untyped-def]
    root = client("root")
    files = {"file": ("judged.jsonl", DATA.read_bytes(), "application/x-ndjson")}
    r = root.http.post("/admin/import", data={"group": "advocates", "csrf_token": root.csrf}, files=files)
    assert r.status_code == 200 and "0 new label items" in r.text  # already imported: idempotent
    bad = {"file": ("bad.jsonl", b'{"prompt": "q"}\n', "application/x-ndjson")}
    r = root.http.post("/admin/import", data={"group": "advocates", "csrf_token": root.csrf}, files=bad)
    assert r.status_code == 400 and "bad.jsonl, row 1, field &#39;response&#39;" in r.text
    r = root.post(
        "/api/import", json={"group": "advocates", "rows": [{"prompt": "q", "response": "r", "harm_level": 9}]}
    )
    assert r.status_code == 400 and "row 1, field 'harm_level'" in r.json()["detail"]
    r = root.post("/api/import", json={"group": "nosuch", "rows": [{"prompt": "q", "response": "r"}]})
    assert r.status_code == 404
    r = root.post("/api/import", json={"group": "advocates", "rows": [json.loads(UPLOAD_ROW)], "source": "api-rows"})
    assert r.status_code == 200 and r.json()["items_added"] == 1

    dave = client("dave")
    item = next(i for i in dave.get("/api/queue?limit=100").json()["items"] if i["kind"] == "label")
    r = dave.post(f"/api/items/{item['id']}/review", json={"version": item["version"], "verdict": "Refuse"})
    assert r.status_code == 200
    for url in ("/admin/export/labels.jsonl", "/api/export/labels?group=advocates"):
        r = root.get(url)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
        rows = [json.loads(line) for line in r.text.splitlines()]
        assert [(x["item_id"], x["verdict"], x["judge"]) for x in rows] == [(item["id"], "Refuse", "human:advocates")]
    assert root.get("/api/export/labels?group=clinicians").text == ""
    assert root.get("/api/export/weights").status_code == 400
    assert root.get("/api/export/labels?group=nosuch").status_code == 404
    assert root.get("/admin/export").status_code == 200

    audit = root.get(f"/api/audit?item={item['id']}").json()
    assert audit["total"] == 1 and audit["entries"][0]["actor"] == "dave"
    assert audit["entries"][0]["new"]["review"]["verdict"] == "Refuse"
    exports = root.get("/api/audit?action=export").json()["entries"]
    assert len(exports) >= 3 and exports[0]["actor"] == "root"  # exports are audited too
    page = root.get(f"/admin/audit?item={item['id']}&actor=&action=")
    assert page.status_code == 200 and "review.create" in page.text
    assert root.get("/admin/audit?item=x").status_code == 422
    dl = root.get("/admin/audit.jsonl")
    assert dl.status_code == 200 and "attachment" in dl.headers["content-disposition"]
    assert any(json.loads(line)["action"] == "import" for line in dl.text.splitlines())


def test_openapi_schema_for_logged_in_users(client) -> None:  # type: ignore[no-untyped-def]
    schema = client("alice").get("/api/openapi.json").json()
    assert "/api/items/{item_id}/review" in schema["paths"] and "/items/{item_id}/review" in schema["paths"]


def test_groups_page_shows_agreement(client, ids) -> None:  # type: ignore[no-untyped-def]
    alice, bob = client("alice"), client("bob")
    v = alice.post(f"/api/items/{ids['label']}/review", json={"version": 1, "verdict": "Refuse"}).json()["version"]
    bob.post(f"/api/items/{ids['label']}/review", json={"version": v, "verdict": "Refuse"})
    page = alice.get("/groups")
    assert page.status_code == 200 and "Fleiss" in page.text and "100%" in page.text
    stats = alice.get("/api/groups").json()[0]["stats"]
    assert stats["labels"]["items"] == 1 and stats["labels"]["agree"] == 1


def test_every_route_is_covered_by_the_endpoint_table(app) -> None:  # type: ignore[no-untyped-def]
    from fastapi.routing import APIRoute

    covered = {(e.method, e.path.replace("{label}", "{item_id}").replace("{pair}", "{item_id}")) for e in ENDPOINTS}
    public = {("GET", "/login"), ("POST", "/login"), ("POST", "/api/login"), ("GET", "/"), ("GET", "/healthz")}
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        for method in route.methods:
            key = (method, route.path)
            concrete = {
                ("POST", "/admin/users/{name}"): ("POST", "/admin/users/alice"),
                ("POST", "/admin/groups/{name}"): ("POST", "/admin/groups/advocates"),
                ("GET", "/admin/export/{kind}.jsonl"): ("GET", "/admin/export/labels.jsonl"),
                ("PATCH", "/api/groups/{name}"): ("PATCH", "/api/groups/advocates"),
                ("PATCH", "/api/users/{name}"): ("PATCH", "/api/users/alice"),
                ("GET", "/api/export/{kind}"): ("GET", "/api/export/labels"),
            }.get(key, key)
            assert concrete in covered or key in public, f"{key} is not in the endpoint table"


def test_item_count_unchanged_by_refusals(sqlite_store) -> None:
    with sqlite_store.session() as db:
        assert db.scalar(select(func.count()).select_from(Item)) == 48


def test_model_text_is_escaped_in_pages(client) -> None:  # type: ignore[no-untyped-def]
    root = client("root")
    row = {"prompt": "<b>bold?</b>", "response": "<script>alert('x')</script>", "verdict": "Accept", "judge": "rules"}
    assert root.post("/api/import", json={"group": "advocates", "rows": [row]}).status_code == 200
    item = next(
        i for i in root.get("/api/queue?group=advocates&limit=100").json()["items"] if i["prompt"] == row["prompt"]
    )
    page = root.get(f"/items/{item['id']}").text
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "<b>bold?</b>" not in page and "&lt;b&gt;bold?&lt;/b&gt;" in page
