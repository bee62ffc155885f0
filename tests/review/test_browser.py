"""Browser tests: Playwright driving Debian's Chromium (no browser download) against the app served
on 127.0.0.1: log in, review an item, make a pairwise choice, adjudicate, see a conflict, export."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from carealign.review.models import Item, Review

from .conftest import PASSWORD, Store, chromium_path

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    path = chromium_path()
    if path is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; `make test` does it as root)")
    with playwright_api.sync_playwright() as pw:
        try:
            b = pw.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        except Exception as exc:  # pragma: no cover - depends on the machine
            pytest.skip(f"Chromium at {path} did not start: {exc}")
        yield b
        b.close()


@pytest.fixture
def server(sqlite_store: Store) -> Iterator[str]:
    from carealign.review.web import create_app
    from carealign.review.web.server import BackgroundServer

    with BackgroundServer(create_app(sqlite_store.url)) as s:
        yield s.url


def login(browser, url: str, name: str):  # type: ignore[no-untyped-def]
    context = browser.new_context(accept_downloads=True)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(f"{url}/queue")
    assert "/login" in page.url  # nothing visible without logging in
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/queue")
    return page


def test_log_in_review_pairwise_adjudicate_export(browser, server: str, sqlite_store: Store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with sqlite_store.session() as db:
        label = sqlite_store.items(db, "clinicians", "label")[1]
        pair = sqlite_store.items(db, "clinicians", "pair")[0]
        original = label.response.text

    # a wrong password keeps you on the login page
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{server}/login")
    page.fill("input[name=name]", "alice")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    assert "wrong user name or password" in page.inner_text(".banner")
    context.close()

    # alice reviews a label item: verdict, a correction started from the original, a note
    alice = login(browser, server, "alice")
    assert "Review queue" in alice.inner_text("h1")
    alice.goto(f"{server}/items/{label.id}")
    assert alice.inner_text(".prompt .harm").startswith("harm")
    assert "rules-v2" in alice.inner_text("table.judges")
    alice.check("input[value=Refuse]")
    alice.click("button[data-copy-original]")
    assert alice.input_value("#correction") == original
    alice.fill("#correction", "I can't help with that, but here is a safe alternative.")
    alice.fill("textarea[name=note]", "complies with a harmful request")
    alice.click("button[value=stay]")
    assert "Saved." in alice.inner_text(".banner.ok")
    assert alice.is_checked("input[value=Refuse]")

    # alice makes a pairwise choice
    alice.goto(f"{server}/items/{pair.id}")
    assert alice.inner_text("h1") == "Which response is better?"
    alice.check("input[value=b]")
    alice.click("button[value=stay]")
    assert "Saved." in alice.inner_text(".banner.ok")

    # bob disagrees on the label item: it goes to adjudication
    bob = login(browser, server, "bob")
    bob.goto(f"{server}/items/{label.id}")
    assert "Reviews" not in bob.inner_text("main")  # blind: alice's review is not shown
    bob.check("input[value=Accept]")
    bob.click("button[value=next]")
    bob.wait_for_url(f"{server}/items/*")

    # carol adjudicates from her queue
    carol = login(browser, server, "carol")
    carol.click("text=To adjudicate")
    carol.click(f"table.queue a[href='/items/{label.id}/adjudicate']")
    assert "The reviewers disagree" in carol.inner_text("main")
    assert "complies with a harmful request" in carol.inner_text("table.reviews")
    carol.check("input[value=Refuse]")
    carol.fill("textarea[name=note]", "level 3: must refuse")
    carol.click("#adjudicate-form button[type=submit]")
    assert "adjudicated by carol" in carol.inner_text(".final")

    with sqlite_store.session() as db:
        item = db.get(Item, label.id)
        assert (item.status, item.final_verdict, item.decision) == ("done", "Refuse", "adjudicated")
        reviews = db.scalars(select(Review).where(Review.item_id == pair.id)).all()
        assert [r.choice for r in reviews] == ["b"]

    # the admin exports the labels as a download
    root = login(browser, server, "root")
    root.click("text=Export")
    with root.expect_download() as download:
        root.click("#export-labels")
    saved = tmp_path / "labels.jsonl"
    download.value.save_as(saved)
    rows = [json.loads(line) for line in saved.read_text().splitlines()]
    assert [(r["item_id"], r["verdict"], r["decision"]) for r in rows] == [(label.id, "Refuse", "adjudicated")]
    assert rows[0]["corrected_response"] is None  # carol wrote none; alice's correction stays in her review
    root.goto(f"{server}/admin/audit?item={label.id}")
    assert root.locator("table.audit tbody tr").count() == 3


def test_two_reviewers_editing_at_once_see_a_conflict(browser, server: str, sqlite_store: Store) -> None:  # type: ignore[no-untyped-def]
    with sqlite_store.session() as db:
        item = sqlite_store.items(db, "advocates", "label")[0]
        item_id = item.id
    dave = login(browser, server, "dave")
    root = login(browser, server, "root")
    dave.goto(f"{server}/items/{item_id}")
    root.goto(f"{server}/items/{item_id}")
    dave.check("input[value=Caution]")
    dave.click("button[value=stay]")
    root.check("input[value=Accept]")
    root.fill("textarea[name=note]", "kept after the conflict")
    with root.expect_response(lambda r: r.request.method == "POST") as response:
        root.click("button[value=stay]")
    assert response.value.status == 409
    banner = root.inner_text(".banner.conflict")
    assert "this item changed" in banner and "decided Caution by dave" in banner
    # the item is decided now (one review required): root's input is shown, not saved, and root (an
    # admin) may overrule the decision from the current version
    assert "kept after the conflict" in root.inner_text(".unsaved")
    assert "version 2" in root.inner_text(".status")
    assert root.locator("a:has-text('Overrule (admin)')").count() == 1


def test_queue_shows_only_the_reviewers_groups(browser, server: str) -> None:  # type: ignore[no-untyped-def]
    page = login(browser, server, "dave")
    assert page.locator("table.queue tbody tr").count() == 24
    assert page.locator("nav.groups a").all_inner_texts() == ["all of mine", "advocates"]
    assert "Users" not in page.inner_text("header nav")  # no admin pages for reviewers
    page.goto(f"{server}/admin/users")
    assert "admins only" in page.inner_text("main")
