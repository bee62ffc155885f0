"""The defects found by probing the review app as an attacker and as a clinician, as regression tests:
the login race, lockout by others, bodies before login, long corrections, session expiry,
spoofable notices, bidirectional text, two reviewers of one item, and non-ASCII user names."""

from __future__ import annotations

import http.client
import sys
import threading
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher

from carealign.review import accounts, auth
from carealign.review.auth import LoginLimits
from carealign.review.reviewing import MAX_CORRECTION
from carealign.review.web.server import BackgroundServer, free_port

from .conftest import CLI, PASSWORD, Store, seed
from .test_crash import start_server


def _server(store: Store, **settings: object) -> BackgroundServer:
    from carealign.review.web import ReviewSettings, create_app

    return BackgroundServer(create_app(ReviewSettings(db=store.url, **settings)))  # type: ignore[arg-type]


# --- 1. the login rate limit holds under concurrent requests ----------------------------------


def test_eight_parallel_wrong_logins_get_at_most_five_401(sqlite_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    # Argon2id at its real cost: the probe's race lives in the time a password check takes
    monkeypatch.setattr(auth, "_hasher", PasswordHasher())
    barrier = threading.Barrier(8)
    statuses: list[int] = []
    lock = threading.Lock()
    with _server(sqlite_store) as server:

        def attempt() -> None:
            with httpx.Client(base_url=server.url, timeout=60) as c:
                barrier.wait()
                r = c.post("/api/login", json={"name": "alice", "password": "wrong password"})
            with lock:
                statuses.append(r.status_code)

        threads = [threading.Thread(target=attempt) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    assert len(statuses) == 8
    assert statuses.count(401) <= 5, statuses
    assert statuses.count(401) + statuses.count(429) == 8, statuses


def test_many_people_behind_one_address_log_in_at_the_same_moment(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a costly hash, so that all 25 password checks are in flight together (as at a shift change)
    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=2, memory_cost=32 * 1024, parallelism=1))
    names = [f"nurse{i:02d}" for i in range(25)]
    with sqlite_store.session() as db:
        for name in names:
            accounts.create_user(db, name, PASSWORD, "reviewer", CLI, groups=["advocates"])
        db.commit()
    barrier = threading.Barrier(len(names))
    statuses: list[int] = []
    lock = threading.Lock()
    with _server(sqlite_store) as server:

        def attempt(name: str) -> None:
            with httpx.Client(base_url=server.url, timeout=120) as c:
                barrier.wait()
                r = c.post("/api/login", json={"name": name, "password": PASSWORD})
            with lock:
                statuses.append(r.status_code)

        threads = [threading.Thread(target=attempt, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    assert statuses == [200] * len(names)  # more than the per-address limit, all from 127.0.0.1


# --- 2. nobody can lock a user out who knows their password --------------------------------


def test_a_flood_of_wrong_passwords_from_elsewhere_does_not_lock_the_user_out(sqlite_store: Store) -> None:
    limits = LoginLimits(user_delay=0.2)
    with _server(sqlite_store, login_limits=limits, trusted_proxies=("127.0.0.1",)) as server:
        with httpx.Client(base_url=server.url, timeout=60) as attacker:
            codes = [
                attacker.post(
                    "/api/login",
                    json={"name": "alice", "password": f"guess {i}"},
                    headers={"X-Forwarded-For": "203.0.113.66"},
                ).status_code
                for i in range(30)
            ]
        assert codes.count(401) == 5 and codes.count(429) == 25  # the attacker's address is limited
        with httpx.Client(base_url=server.url, timeout=60) as alice:
            r = alice.post(
                "/api/login",
                json={"name": "alice", "password": PASSWORD},
                headers={"X-Forwarded-For": "198.51.100.7"},
            )
        assert r.status_code == 200, r.text
        # other users behind the same proxy are not limited by the attacker's address either
        with httpx.Client(base_url=server.url, timeout=60) as bob:
            r = bob.post(
                "/api/login", json={"name": "bob", "password": PASSWORD}, headers={"X-Forwarded-For": "198.51.100.8"}
            )
        assert r.status_code == 200


def test_forwarded_addresses_are_ignored_without_a_trusted_proxy(sqlite_store: Store) -> None:
    limits = LoginLimits(user_delay=0.0)
    with _server(sqlite_store, login_limits=limits) as server, httpx.Client(base_url=server.url) as c:
        for i in range(5):
            spoofed = {"X-Forwarded-For": f"192.0.2.{i}"}
            assert c.post("/api/login", json={"name": "bob", "password": "x"}, headers=spoofed).status_code == 401
        r = c.post("/api/login", json={"name": "bob", "password": "x"}, headers={"X-Forwarded-For": "192.0.2.99"})
        assert r.status_code == 429  # a client cannot pick a fresh address for itself


# --- 3. request bodies are limited before login, and refused without a session --------------


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _post_big(port: int, path: str, size: int, *, chunked: bool) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    block = b"x" * (1024 * 1024)
    try:
        conn.putrequest("POST", path)
        conn.putheader("Content-Type", "application/json")
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        else:
            conn.putheader("Content-Length", str(size))
        conn.endheaders()
        sent = 0
        try:
            while sent < size:
                if chunked:
                    conn.send(b"%x\r\n%s\r\n" % (len(block), block))
                else:
                    conn.send(block)
                sent += len(block)
            if chunked:
                conn.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the whole body was sent
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_twenty_megabyte_bodies_without_a_session_get_413_without_growing_memory(tmp_path: Path) -> None:
    db = tmp_path / "review.db"
    seed(f"sqlite:///{db}").engine.dispose()
    port = free_port()
    proc = start_server(db, port, tmp_path / "server.log")
    try:
        httpx.get(f"http://127.0.0.1:{port}/login")  # warm up: templates loaded
        before = _rss_kib(proc.pid)
        statuses: list[int] = []
        lock = threading.Lock()

        def send(i: int) -> None:
            path = ("/api/login", "/admin/import", "/api/items/1/review", "/login")[i % 4]
            status = _post_big(port, path, 20 * 1024 * 1024, chunked=i % 2 == 1)
            with lock:
                statuses.append(status)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        time.sleep(0.5)
        growth_mib = (_rss_kib(proc.pid) - before) / 1024
        assert statuses == [413] * 10
        assert growth_mib < 50, f"server grew by {growth_mib:.0f} MiB"
        # a malformed body without a session is refused for the session, not parsed
        r = httpx.post(f"http://127.0.0.1:{port}/api/items/1/review", content=b"{not json")
        assert r.status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_malformed_form_without_a_session_redirects_to_login(client) -> None:  # type: ignore[no-untyped-def]
    r = client(None).http.post("/items/1/review", content=b"\xff\xfe garbage", headers={"Content-Type": "x/y"})
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


# --- 4. long corrections are saved, and input is kept on every error ------------------------


@pytest.fixture
def long_item(client) -> Iterator[int]:  # type: ignore[no-untyped-def]
    root = client("root")
    long_response = "Take the tablets as follows. " * 1800  # about 50 KB
    row = {"prompt": "a long question", "response": long_response, "verdict": "Accept", "judge": "rules"}
    assert root.post("/api/import", json={"group": "advocates", "rows": [row]}).status_code == 200
    items = root.get("/api/queue?group=advocates&limit=100").json()["items"]
    yield next(i["id"] for i in items if i["prompt"] == "a long question")


def test_a_correction_started_from_a_50_kb_response_is_saved(client, long_item: int) -> None:  # type: ignore[no-untyped-def]
    dave = client("dave")
    page = dave.get(f"/items/{long_item}").text
    assert f'maxlength="{MAX_CORRECTION}"' in page and f"{MAX_CORRECTION:,}" in page  # the limit at the field
    original = dave.get(f"/api/items/{long_item}").json()["response"]["text"]
    correction = original.strip() + " Never more than four a day."
    r = dave.form(
        f"/items/{long_item}/review",
        {"version": 1, "verdict": "Accept", "corrected_response": correction, "note": "dose limit"},
    )
    assert r.status_code == 303, r.text[:500]
    assert dave.get(f"/api/items/{long_item}").json()["my_review"]["corrected_response"] == correction


def test_a_too_long_correction_keeps_everything_typed(client, long_item: int) -> None:  # type: ignore[no-untyped-def]
    dave = client("dave")
    too_long = "x" * (MAX_CORRECTION + 1)
    r = dave.form(
        f"/items/{long_item}/review",
        {"version": 1, "verdict": "Caution", "corrected_response": too_long, "note": "my careful note"},
    )
    assert r.status_code == 400
    assert "at most" in r.text and "my careful note" in r.text and too_long in r.text
    assert 'value="Caution" required checked' in r.text or 'value="Caution" checked' in r.text


def test_a_missing_verdict_keeps_the_correction_and_note(client, long_item: int) -> None:  # type: ignore[no-untyped-def]
    r = client("dave").form(f"/items/{long_item}/review", {"version": 1, "corrected_response": "Safer.", "note": "n1"})
    assert r.status_code == 400 and "verdict" in r.text and "Safer." in r.text and "n1" in r.text


# --- 5. an expired session keeps the review --------------------------------------------------


def test_a_post_after_expiry_returns_to_the_item_page_not_the_post_url(client, ids) -> None:  # type: ignore[no-untyped-def]
    c = client(None)
    r = c.http.post(f"/items/{ids['label']}/review", data={"version": 1, "verdict": "Refuse"})
    assert r.status_code == 303
    location = r.headers["location"]
    assert location.startswith("/login?") and "expired=1" in location
    assert f"next=%2Fitems%2F{ids['label']}&" in location or location.endswith(f"next=%2Fitems%2F{ids['label']}")
    page = c.get(location)
    assert "session ended" in page.text and "kept in this browser" in page.text


# --- 6. notices come from an allow-list ------------------------------------------------------


def test_notices_are_not_taken_from_the_url(client) -> None:  # type: ignore[no-untyped-def]
    root = client("root")
    spoof = "SECURITY NOTICE: reset password to Welcome2026"
    page = root.get("/admin/users", params={"done": spoof}).text
    assert "SECURITY NOTICE" not in page and "Welcome2026" not in page
    r = root.form("/admin/users", {"name": "newbie", "password": "long-enough", "role": "reviewer"})
    assert r.status_code == 303
    assert "User newbie was created." in root.get(r.headers["location"]).text
    page = root.get("/admin/users?notice=user-created&name=Welcome2026").text
    assert "Welcome2026" not in page  # a notice names only users that exist


# --- 7. bidirectional controls in model text cannot reorder what reviewers see ----------------


def test_bidi_overrides_are_shown_and_isolated(client) -> None:  # type: ignore[no-untyped-def]
    root = client("root")
    row = {
        "prompt": "how much \u202eof this drug\u202c is safe",
        "response": "Take \u202e01\u202c tablets \u2067a\u2069 day",
        "verdict": "Accept",
        "judge": "rules",
    }
    assert root.post("/api/import", json={"group": "advocates", "rows": [row]}).status_code == 200
    queue = root.get("/queue?group=advocates").text
    item_id = next(
        i["id"] for i in root.get("/api/queue?group=advocates&limit=100").json()["items"] if "drug" in i["prompt"]
    )
    page = root.get(f"/items/{item_id}").text
    for html in (queue, page):
        for ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069":
            assert ch not in html
        assert "U+202E" in html
    assert 'dir="auto"' in page and "<bdi" in queue
    # the stored text is untouched
    assert root.get(f"/api/items/{item_id}").json()["response"]["text"] == row["response"]


# --- 8. two reviewers of one item in a two-review group ---------------------------------------


def test_two_reviewers_who_opened_one_item_both_save(client, ids) -> None:  # type: ignore[no-untyped-def]
    alice, bob = client("alice"), client("bob")
    assert 'name="version" value="1"' in alice.get(f"/items/{ids['label']}").text
    assert 'name="version" value="1"' in bob.get(f"/items/{ids['label']}").text
    r = alice.form(f"/items/{ids['label']}/review", {"version": 1, "verdict": "Refuse", "note": "alice's"})
    assert r.status_code == 303
    r = bob.form(f"/items/{ids['label']}/review", {"version": 1, "verdict": "Refuse", "note": "bob's"})
    assert r.status_code == 303, r.text[:400]
    item = bob.get(f"/api/items/{ids['label']}").json()
    assert item["status"] == "done" and item["final"]["verdict"] == "Refuse"
    # in a one-review group the second save still conflicts: the item was decided meanwhile
    dave, root = client("dave"), client("root")
    adv = next(i["id"] for i in root.get("/api/queue?group=advocates").json()["items"] if i["kind"] == "label")
    assert dave.form(f"/items/{adv}/review", {"version": 1, "verdict": "Accept"}).status_code == 303
    assert root.form(f"/items/{adv}/review", {"version": 1, "verdict": "Refuse"}).status_code == 409


# --- 9. user names in any script -------------------------------------------------------------


def test_non_ascii_user_names(client) -> None:  # type: ignore[no-untyped-def]
    root = client("root")
    r = root.post("/api/users", json={"name": "dr.müller", "password": PASSWORD, "groups": ["advocates"]})
    assert r.status_code == 201, r.text
    decomposed = unicodedata.normalize("NFD", "dr.müller")
    assert root.post("/api/users", json={"name": decomposed, "password": PASSWORD}).status_code == 400  # same name
    c = client(None)
    assert c.http.post("/api/login", json={"name": decomposed, "password": PASSWORD}).status_code == 200
    assert "dr.müller" in root.get("/admin/users").text
    assert root.form("/admin/users/dr.müller", {"role": "reviewer", "active": "no"}).status_code == 303
    for bad in ("dr müller", "\u202eadmin", "_x", "a/b"):
        assert root.post("/api/users", json={"name": bad, "password": PASSWORD}).status_code == 400, bad


@pytest.fixture
def ids(sqlite_store: Store) -> dict[str, int]:
    with sqlite_store.session() as db:
        return {
            "label": sqlite_store.items(db, "clinicians", "label")[0].id,
            "pair": sqlite_store.items(db, "clinicians", "pair")[0].id,
        }
