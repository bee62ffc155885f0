"""Browser tests of the second pass (Playwright on Debian's Chromium, the app on 127.0.0.1): blind
review, skip, keyboard review of three items, a pending review surviving session expiry, and a
long correction saved."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from carealign.review import accounts
from carealign.review.audit import Actor
from carealign.review.models import AuthSession, Item, Review, User, utcnow

from .conftest import Store
from .test_browser import browser, login, server  # noqa: F401  (fixtures)

pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")


def _item_id(url: str) -> int:
    return int(url.split("/items/")[1].split("?")[0].split("/")[0])


def _reviews(store: Store, name: str) -> list[Review]:
    with store.session() as db:
        user_id = db.scalars(select(User.id).where(User.name == name)).one()
        return list(db.scalars(select(Review).where(Review.reviewer_id == user_id).order_by(Review.id)))


def test_blind_review_shows_the_judges_after_the_verdict(browser, server: str, sqlite_store: Store) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    with sqlite_store.session() as db:
        accounts.update_group(db, "advocates", Actor("cli:test"), blind=True)
        db.commit()
        item = sqlite_store.items(db, "advocates", "label")[0]
    dave = login(browser, server, "dave")
    dave.goto(f"{server}/items/{item.id}")
    assert "hidden until you have given yours" in dave.inner_text(".response")
    assert dave.locator("table.judges").count() == 0
    assert "rules-v2" not in dave.inner_text("main")
    dave.check("input[value=Caution]")
    dave.click("button[value=stay]")
    assert "Saved." in dave.inner_text(".banner.ok")
    table = dave.inner_text("table.judges")
    assert "rules-v2" in table and ("agrees" in table or "differs" in table)
    assert [r.blind for r in _reviews(sqlite_store, "dave")] == [True]


def test_skip_moves_on_and_releases_the_item(browser, server: str, sqlite_store: Store) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    alice = login(browser, server, "alice")
    alice.click("#start")
    alice.wait_for_url(f"{server}/items/*")
    first = _item_id(alice.url)
    alice.click("#skip")
    alice.wait_for_url(lambda url: "/items/" in url and _item_id(url) != first)
    with sqlite_store.session() as db:
        assert db.get(Item, first).claimed_by_id is None
    bob = login(browser, server, "bob")
    bob.click("#start")
    bob.wait_for_url(f"{server}/items/*")
    assert _item_id(bob.url) == first  # free for others again


def test_keyboard_review_of_three_items(browser, server: str, sqlite_store: Store) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    dave = login(browser, server, "dave")
    dave.click("#start")
    seen = []
    for _ in range(3):
        dave.wait_for_url(f"{server}/items/*")
        seen.append(_item_id(dave.url))
        assert "Keyboard shortcuts" in dave.inner_text("details.keys")
        dave.keyboard.press("2")  # it hedged or warned / tie
        assert dave.locator("input[type=radio][data-key='2']").is_checked()
        dave.keyboard.press("n")
        dave.keyboard.type("typed without the mouse")
        dave.keyboard.press("Escape")
        dave.keyboard.press("Enter")  # save and next
        dave.wait_for_url(lambda url, current=seen[-1]: "/items/" not in url or _item_id(url) != current)
    reviews = _reviews(sqlite_store, "dave")
    assert [r.item_id for r in reviews] == seen and len(set(seen)) == 3
    assert all(r.note == "typed without the mouse" for r in reviews)
    assert all((r.verdict or r.choice) in ("Caution", "tie") for r in reviews)


def test_a_pending_review_survives_session_expiry(browser, server: str, sqlite_store: Store) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    with sqlite_store.session() as db:
        item = sqlite_store.items(db, "clinicians", "label")[2]
    alice = login(browser, server, "alice")
    alice.goto(f"{server}/items/{item.id}")
    alice.check("input[value=Refuse]")
    alice.fill("#correction", "Please talk to your pharmacist; I cannot advise on that dose.")
    alice.fill("textarea[name=note]", "written before the session ended")
    with sqlite_store.session() as db:  # the session ends while alice is typing
        db.execute(update(AuthSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.commit()
    alice.click("button[value=stay]")
    alice.wait_for_url(f"{server}/login*")
    assert "session ended" in alice.inner_text("#expired")
    alice.fill("input[name=name]", "alice")
    alice.fill("input[name=password]", "correct-horse-battery")
    alice.click("button[type=submit]")
    alice.wait_for_url(f"{server}/items/{item.id}")
    assert "back in the form" in alice.inner_text("#draft-restored")
    assert alice.is_checked("input[value=Refuse]")
    assert alice.input_value("textarea[name=note]") == "written before the session ended"
    assert alice.input_value("#correction").startswith("Please talk to your pharmacist")
    alice.click("button[value=stay]")
    assert "Saved." in alice.inner_text(".banner.ok")
    assert alice.locator("#draft-restored").count() == 0
    [review] = _reviews(sqlite_store, "alice")
    assert (review.item_id, review.verdict, review.note) == (item.id, "Refuse", "written before the session ended")


def test_a_long_correction_is_saved(browser, server: str, sqlite_store: Store) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    root = login(browser, server, "root")
    long_response = "Take one tablet with water, and keep a record of every dose you take. " * 750  # ~53 KB
    response = root.request.post(
        f"{server}/api/import",
        data={"group": "advocates", "rows": [{"prompt": "a long question", "response": long_response}]},
        headers={"X-CSRF-Token": root.request.get(f"{server}/api/me").json()["csrf_token"]},
    )
    assert response.ok, response.text()
    with sqlite_store.session() as db:
        item = next(i for i in sqlite_store.items(db, "advocates", "label") if i.prompt.text == "a long question")
    dave = login(browser, server, "dave")
    dave.goto(f"{server}/items/{item.id}")
    dave.check("input[value=Accept]")
    dave.click("button[data-copy-original]")
    dave.locator("#correction").press("Control+End")
    dave.locator("#correction").type(" Never more than four in a day.")
    dave.click("button[value=stay]")
    assert "Saved." in dave.inner_text(".banner.ok")
    [review] = _reviews(sqlite_store, "dave")
    assert len(review.corrected_response or "") > 50_000
    assert review.corrected_response.endswith("Never more than four in a day.")
