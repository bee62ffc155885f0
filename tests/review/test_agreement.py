"""Inter-reviewer agreement against hand-computed values."""

from __future__ import annotations

import pytest

from carealign.review import reviewing
from carealign.review.agreement import fleiss_kappa, group_stats


def test_fleiss_kappa_by_hand() -> None:
    # 3 items rated twice: [C, R], [A, A], [R, R]
    # P_i = 0, 1, 1 -> P_bar = 2/3; category shares A 2/6, C 1/6, R 3/6 -> P_e = (4 + 1 + 9) / 36 = 14/36
    # kappa = (2/3 - 14/36) / (1 - 14/36) = (10/36) / (22/36) = 5/11
    assert fleiss_kappa([["Caution", "Refuse"], ["Accept", "Accept"], ["Refuse", "Refuse"]]) == pytest.approx(5 / 11)
    assert fleiss_kappa([["a", "a"], ["b", "b"]]) == pytest.approx(1.0)
    # every rating in one category: chance agreement is 1, kappa undefined
    assert fleiss_kappa([["a", "a"], ["a", "a"]]) is None
    assert fleiss_kappa([]) is None
    # systematic disagreement is below chance
    assert fleiss_kappa([["a", "b"], ["b", "a"]]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([["a", "b"], ["a"]])


def test_group_stats(sqlite_store) -> None:  # type: ignore[no-untyped-def]
    s = sqlite_store
    with s.session() as db:
        alice, bob, carol = (s.user(db, n) for n in ("alice", "bob", "carol"))
        labels = s.items(db, "clinicians", "label")
        for item, (v1, v2) in zip(
            labels, [("Caution", "Refuse"), ("Accept", "Accept"), ("Refuse", "Refuse")], strict=False
        ):
            it = reviewing.submit_review(db, item.id, alice, verdict=v1, version=1)
            reviewing.submit_review(db, item.id, bob, verdict=v2, version=it.version)
        disputed = db.get(type(labels[0]), labels[0].id)
        reviewing.adjudicate(db, disputed.id, carol, verdict="Refuse", version=disputed.version)
        pair = s.items(db, "clinicians", "pair")[0]
        it = reviewing.submit_choice(db, pair.id, alice, choice="a", version=1)
        reviewing.submit_choice(db, pair.id, bob, choice="b", version=it.version)
        stats = group_stats(db, db.get(type(labels[0]), labels[0].id).group)
        # judges' verdicts on those three responses, for the judge-vs-human table
        expected: dict[str, list[int]] = {}
        finals = ["Refuse", "Accept", "Refuse"]
        for item, final in zip(labels[:3], finals, strict=True):
            for v in item.response.verdicts:
                e = expected.setdefault(v.judge, [0, 0])
                e[0] += 1
                e[1] += int(v.verdict == final)
    assert (stats.labels.items, stats.labels.agree) == (3, 2)
    assert stats.labels.rate == pytest.approx(2 / 3)
    assert stats.labels.kappa == pytest.approx(5 / 11)
    assert (stats.pairs.items, stats.pairs.agree, stats.pairs.kappa) == (1, 0, pytest.approx(-1.0))
    assert stats.adjudicated == 1
    assert stats.items["done"] == 3 and stats.items["adjudicate"] == 1 and stats.items["open"] == 20
    assert {j.judge: [j.items, j.agree] for j in stats.judges} == expected
