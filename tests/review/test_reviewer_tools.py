"""A reviewer's tools: verdicts worded as what the response did, the warning for a correction the
DPO export leaves out, blind review, skip, progress, filters, other responses, priority in words
and empty exports."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from carealign.review.models import Review

from .conftest import Store


def _first(c, group: str, kind: str = "label", **params: object) -> dict:  # type: ignore[no-untyped-def]
    """The first item of a kind in a group's queue (narrowed by ``params``)."""
    query = "&".join(f"{k}={v}" for k, v in params.items())
    items = [i for i in c.get(f"/api/queue?group={group}&limit=100&{query}").json()["items"] if i["kind"] == kind]
    assert items, params
    return items[0]


def test_verdicts_read_as_what_the_response_did_with_the_harm_level(client) -> None:  # type: ignore[no-untyped-def]
    dave = client("dave")
    item = _first(dave, "advocates", harm_level=3)
    page = dave.get(f"/items/{item['id']}").text
    assert "What did the response do?" in page
    for phrase in ("It complied", "It hedged or warned", "It declined"):
        assert phrase in page
    assert "highly harmful" in page and "score 0" in page and "score 1" in page


def test_a_correction_the_dpo_export_leaves_out_is_saved_with_a_warning(client) -> None:  # type: ignore[no-untyped-def]
    dave, root = client("dave"), client("root")
    item = _first(dave, "advocates", harm_level=3)
    page = dave.get(f"/items/{item['id']}").text
    assert 'value="Refuse" required  data-key="3" data-excludes-correction' in page  # the live hint's cue
    r = dave.form(
        f"/items/{item['id']}/review",
        {"version": 1, "verdict": "Refuse", "corrected_response": "I can't help with that.", "then": "next"},
    )
    assert r.status_code == 303 and r.headers["location"] == f"/items/{item['id']}?saved=1"  # stays to warn
    page = dave.get(r.headers["location"]).text
    assert "Saved, but note" in page and "will not be exported as a DPO pair" in page
    assert "it declined (Refuse), which scores 1 at harm level 3" in page
    assert not [row for row in _export(root, "dpo") if row["item_id"] == item["id"]]  # the warning was true
    # with "it complied" the correction becomes a pair, and there is nothing to warn about
    r = root.post(
        f"/api/items/{item['id']}/adjudicate",
        json={"version": 2, "verdict": "Accept", "corrected_response": "I can't help with that."},
    )
    assert r.status_code == 200 and r.json()["warnings"] == []
    assert [row["source"] for row in _export(root, "dpo") if row["item_id"] == item["id"]] == ["correction"]


def _export(c, kind: str) -> list[dict]:  # type: ignore[no-untyped-def]
    r = c.get(f"/api/export/{kind}")
    return [json.loads(line) for line in r.text.splitlines() if line]


def test_blind_review_hides_judges_until_the_reviewer_decides(client, sqlite_store: Store) -> None:  # type: ignore[no-untyped-def]
    root, dave = client("root"), client("dave")
    assert root.patch("/api/groups/advocates", json={"blind": True}).json()["blind"] is True
    item = next(i for i in dave.get("/api/queue?group=advocates&limit=100").json()["items"] if i["kind"] == "label")
    assert item["judges_hidden"] and not any("judges" in r or "confidence" in r for r in item["priority_reasons"])
    view = dave.get(f"/api/items/{item['id']}").json()
    assert view["response"]["judges"] is None and view["blind"] is True
    page = dave.get(f"/items/{item['id']}").text
    assert "hidden until you have given yours" in page and "rules-v2" not in page
    assert "rules-v2" not in dave.get("/queue?group=advocates").text  # nor in the queue's reasons
    r = dave.post(f"/api/items/{item['id']}/review", json={"version": 1, "verdict": "Caution"})
    judges = r.json()["response"]["judges"]
    assert judges and all(j["agrees"] == (j["verdict"] == "Caution") for j in judges)
    page = dave.get(f"/items/{item['id']}").text
    assert "rules-v2" in page and ("agrees" in page or "differs" in page)
    with sqlite_store.session() as db:
        assert db.scalars(select(Review.blind).where(Review.item_id == item["id"])).one() is True
    stats = next(g for g in dave.get("/api/groups").json() if g["name"] == "advocates")["stats"]
    assert stats["blind_reviews"] == 1
    assert {j["judge"] for j in stats["blind_judges"]} == {j["judge"] for j in judges}
    assert "Judges against blind reviews" in dave.get("/groups").text
    # outside blind groups the judges are shown as before
    alice = client("alice")
    assert alice.get(f"/api/items/{_first(alice, 'clinicians')['id']}").json()["response"]["judges"]


def test_skip_releases_the_item_and_next_offers_it_last(client) -> None:  # type: ignore[no-untyped-def]
    alice, bob = client("alice"), client("bob")
    total = alice.get("/api/queue?group=clinicians").json()["total"]
    first = alice.post("/api/queue/next", json={"group": "clinicians"}).json()["item"]["id"]
    assert alice.post("/api/queue/next", json={"group": "clinicians"}).json()["item"]["id"] == first  # held
    r = alice.form(f"/items/{first}/skip", {})
    assert r.status_code == 303 and r.headers["location"].startswith("/items/")
    second = int(r.headers["location"].split("/")[2].split("?")[0])
    assert second != first
    assert bob.post("/api/queue/next", json={"group": "clinicians"}).json()["item"]["id"] == first  # released
    ids = [i["id"] for i in alice.get("/api/queue?group=clinicians&limit=100").json()["items"]]
    assert first not in ids  # bob holds it now
    assert bob.post(f"/api/items/{first}/skip").json() == {"skipped": first}
    ids = [i["id"] for i in alice.get("/api/queue?group=clinicians&limit=100").json()["items"]]
    assert ids[-1] == first and len(ids) == total  # alice skipped it: last in her queue


def test_progress_filters_and_priority_in_words(client) -> None:  # type: ignore[no-untyped-def]
    alice = client("alice")
    data = alice.get("/api/queue?group=clinicians").json()
    assert data["progress"] == {"reviewed": 0, "left": 24}
    item = data["items"][0]
    alice.post(
        f"/api/items/{item['id']}/{'review' if item['kind'] == 'label' else 'choice'}",
        json={"version": 1, **({"verdict": "Refuse"} if item["kind"] == "label" else {"choice": "a"})},
    )
    assert alice.get("/api/queue?group=clinicians").json()["progress"] == {"reviewed": 1, "left": 23}
    page = alice.get("/queue?group=clinicians").text
    assert "1 of 24" in page and "Here because" in page
    level3 = alice.get("/api/queue?group=clinicians&harm_level=3&limit=100").json()
    assert level3["total"] > 0 and all(i["harm_level"] == 3 for i in level3["items"])
    assert level3["total"] < alice.get("/api/queue?group=clinicians").json()["total"]
    nxt = alice.post("/api/queue/next", json={"group": "clinicians", "harm_level": 0}).json()["item"]
    assert nxt["prompt"]["harm_level"] == 0
    principle = level3["items"][0]["principle"]
    by_principle = alice.get(f"/api/queue?group=clinicians&principle={principle}&limit=100").json()["items"]
    assert by_principle and {i["principle"] for i in by_principle} == {principle}
    page = alice.get(f"/queue?group=clinicians&harm=3&principle={principle}").text
    assert 'name="harm" value="3"' in page  # "Review next item" keeps the filter
    r = alice.form("/queue/next", {"group": "clinicians", "harm": "3", "principle": principle})
    assert r.status_code == 303 and f"harm=3&principle={principle}" in r.headers["location"]
    assert alice.get("/api/queue?source=nosuch").json()["total"] == 0
    assert alice.get("/queue?harm=7").status_code == 422


def test_other_responses_to_the_same_prompt_are_shown(client) -> None:  # type: ignore[no-untyped-def]
    alice = client("alice")
    items = alice.get("/api/queue?group=clinicians&limit=100").json()["items"]
    label = next(i for i in items if i["kind"] == "label")
    view = alice.get(f"/api/items/{label['id']}").json()
    siblings = [i for i in items if i["kind"] == "label" and i["prompt"] == label["prompt"] and i["id"] != label["id"]]
    assert len(view["others"]) == len(siblings) >= 1
    page = alice.get(f"/items/{label['id']}").text
    assert "other responses to this prompt" in page
    assert view["others"][0]["text"].split(".")[0].replace("'", "&#39;") in page


@pytest.mark.parametrize("kind", ["labels", "dpo", "kto", "judge"])
def test_an_empty_export_says_why(client, kind: str) -> None:  # type: ignore[no-untyped-def]
    root = client("root")
    r = root.get(f"/admin/export/{kind}.jsonl?group=advocates")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert f"Nothing to export as {kind} in group advocates" in r.text
    assert "nothing yet" in root.get("/admin/export").text
    assert root.get(f"/api/export/{kind}").headers["x-export-rows"] == "0"
