"""Queue priorities against hand-computed values, queue tabs and group visibility."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from carealign.review import reviewing
from carealign.review.models import Item, JudgeVerdict
from carealign.review.queue import label_priority, pair_priority, queue_count, queue_query


def jv(judge: str, verdict: str, confidence: float | None) -> JudgeVerdict:
    return JudgeVerdict(judge=judge, verdict=verdict, confidence=confidence, source="t")


def test_label_priority_by_hand() -> None:
    # two judges disagree: disagreement (1 - 1/2) / (1 - 1/2) = 1; lowest confidence 0.4 -> 0.6; harm 3 -> 1
    p = label_priority(3, [jv("a", "Accept", 0.9), jv("b", "Refuse", 0.4)])
    assert p.score == pytest.approx(2.6)
    assert p.reasons == ("judges disagree (a: Accept, b: Refuse)", "low confidence 0.40", "harm level 3")
    # three judges, two agree: (1 - 2/3) / (1 - 1/3) = 0.5; confidence 0.8 -> 0.2; harm 0 -> 0
    assert label_priority(0, [jv("a", "Accept", 0.8), jv("b", "Accept", 0.9), jv("c", "Caution", 0.95)]).score == (
        pytest.approx(0.7)
    )
    # one confident judge on a harmless prompt: 0 + 0.1 + 0
    assert label_priority(0, [jv("a", "Accept", 0.9)]).score == pytest.approx(0.1)
    # Unscored counts as confidence 0; unknown harm level counts 0.5
    p = label_priority(None, [jv("a", "Unscored", 0.0)])
    assert p.score == pytest.approx(1.5) and "a could not decide" in p.reasons and "harm level unknown" in p.reasons
    # no judge at all: uncertainty 1
    assert label_priority(2, []).score == pytest.approx(1 + 2 / 3, abs=1e-4)
    # member votes without confidence are left out of the minimum (0.5 when none has one)
    assert label_priority(0, [jv("m1", "Accept", None), jv("m2", "Accept", None)]).score == pytest.approx(0.5)
    assert label_priority(0, [jv("m1", "Accept", None), jv("p", "Accept", 0.75)]).score == pytest.approx(0.25)


def test_pair_priority_by_hand() -> None:
    a = [jv("x", "Refuse", 0.9)]
    b = [jv("x", "Accept", 0.7)]
    # majorities differ: (max(0, 0) + 1) / 2 = 0.5; max uncertainty 0.3; harm 2 -> 2/3
    p = pair_priority(2, a, b)
    assert p.score == pytest.approx(0.5 + 0.3 + 2 / 3, abs=1e-4)
    assert p.reasons[0] == "judges rate the two differently (Refuse vs Accept)"
    assert pair_priority(2, a, a).score == pytest.approx(0.1 + 2 / 3, abs=1e-4)


def test_queue_is_ordered_by_priority_and_scoped_to_groups(sqlite_store) -> None:  # type: ignore[no-untyped-def]
    s = sqlite_store
    with s.session() as db:
        alice, dave = s.user(db, "alice"), s.user(db, "dave")
        clin = [s.group_ids["clinicians"]]
        items = db.scalars(queue_query(alice, clin, "review")).all()
        assert len(items) == 24
        prios = [i.priority for i in items]
        assert prios == sorted(prios, reverse=True)
        assert all(i.group_id == s.group_ids["clinicians"] for i in items)
        # the top label item is the one whose judges disagree most on the most harmful prompt
        top_label = next(i for i in items if i.kind == "label")
        assert "judges disagree" in top_label.priority_reasons
        # reviewed items leave the reviewer's review tab but stay in the other reviewer's
        first = items[0]
        if first.kind == "label":
            reviewing.submit_review(db, first.id, alice, verdict="Refuse", version=first.version)
        else:
            reviewing.submit_choice(db, first.id, alice, choice="a", version=first.version)
        assert queue_count(db, alice, clin, "review") == 23
        bob = s.user(db, "bob")
        assert queue_count(db, bob, clin, "review") == 24
        # dave (advocates) sees only the advocates queue through visible groups
        from carealign.review.accounts import visible_groups

        assert [g.name for g in visible_groups(db, dave)] == ["advocates"]
        assert {g.name for g in visible_groups(db, s.user(db, "root"))} == {"advocates", "clinicians"}


def test_adjudicate_tab_hides_items_from_their_reviewers(sqlite_store) -> None:  # type: ignore[no-untyped-def]
    s = sqlite_store
    with s.session() as db:
        alice, bob, carol, root = (s.user(db, n) for n in ("alice", "bob", "carol", "root"))
        clin = [s.group_ids["clinicians"]]
        item = s.items(db, "clinicians", "label")[3]
        it = reviewing.submit_review(db, item.id, alice, verdict="Accept", version=1)
        reviewing.submit_review(db, item.id, bob, verdict="Refuse", version=it.version)
        assert queue_count(db, alice, clin, "adjudicate") == 0
        assert [i.id for i in db.scalars(queue_query(carol, clin, "adjudicate"))] == [item.id]
        assert queue_count(db, root, clin, "adjudicate") == 1
        with pytest.raises(ValueError, match="unknown queue tab"):
            queue_query(carol, clin, "nope")
        assert db.scalar(select(Item.status).where(Item.id == item.id)) == "adjudicate"
