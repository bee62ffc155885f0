"""load_human_feedback: from a database (SQLite path or URL, PostgreSQL URL) or from exports, and
applying human labels over judge verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carealign.errors import DataError
from carealign.review import load_human_feedback, reviewing
from carealign.review.exports import export_to_file
from carealign.score.policy import SafetyPolicy

from .conftest import DATA
from .test_exports import COVID, GOOD_ANSWER, item_for


def decide(store) -> None:  # type: ignore[no-untyped-def]
    """dave (advocates) labels the harmless-question refusal Caution with a correction, and a level-3
    compliance Refuse; alice and bob (clinicians) pick response b of the COVID pair."""
    with store.session() as db:
        dave, alice, bob = (store.user(db, n) for n in ("dave", "alice", "bob"))
        adv, clin = store.group_ids["advocates"], store.group_ids["clinicians"]
        reviewing.submit_review(
            db, item_for(db, adv, COVID, 1).id, dave, verdict="Caution", version=1, corrected_response=GOOD_ANSWER
        )
        reviewing.submit_review(
            db, item_for(db, adv, "patient_privacy-L3-03-direct", 1).id, dave, verdict="Refuse", version=1
        )
        pair = item_for(db, clin, COVID, kind="pair")
        pair = reviewing.submit_choice(db, pair.id, alice, choice="b", version=1)
        reviewing.submit_choice(db, pair.id, bob, choice="b", version=pair.version)


def judged_rows() -> list[dict]:
    return [json.loads(line) for line in DATA.read_text().splitlines()]


def check(fb) -> None:  # type: ignore[no-untyped-def]
    assert len(fb.labels) == 2 and len(fb.dpo) == 1 and len(fb.kto) == 3
    rows, n = fb.apply(judged_rows())
    assert n == 2
    by = {(r["prompt_id"], r["sample"]): r for r in rows}
    covid = by[(COVID, 1)]
    assert (covid["verdict"], covid["judge"], covid["confidence"]) == ("Caution", "human:advocates", 1.0)
    assert covid["judge_verdict"] == {"verdict": "Refuse", "confidence": 0.9, "judge": "rules-v2"}
    assert covid["score"] == 0.5  # the advocates' own policy
    hiv = by[("patient_privacy-L3-03-direct", 1)]
    assert (hiv["verdict"], hiv["score"]) == ("Refuse", 1.0)
    untouched = by[(COVID, 0)]
    assert untouched["judge"] == "rules-v2" and "judge_verdict" not in untouched
    # scored by the alignment run's policy when one is given
    rows, _ = fb.apply(judged_rows(), policy=SafetyPolicy.cares())
    assert {(r["prompt_id"], r["sample"]): r for r in rows}[(COVID, 1)]["score"] == 0.0


def test_from_the_database(store) -> None:  # type: ignore[no-untyped-def]
    decide(store)
    url = store.url
    check(load_human_feedback(url))
    only = load_human_feedback(url, group="clinicians")
    assert len(only.labels) == 0 and len(only.dpo) == 1


def test_from_a_sqlite_file_path(sqlite_store) -> None:  # type: ignore[no-untyped-def]
    decide(sqlite_store)
    path = sqlite_store.url.removeprefix("sqlite:///")
    assert path.endswith(".db")
    check(load_human_feedback(Path(path)))


def test_from_exports(sqlite_store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    decide(sqlite_store)
    with sqlite_store.session() as db:
        for kind in ("labels", "dpo", "kto"):
            export_to_file(db, kind, tmp_path / "exports" / f"{kind}.jsonl")
    check(load_human_feedback(tmp_path / "exports"))
    files = [tmp_path / "exports" / f"{k}.jsonl" for k in ("labels", "dpo", "kto")]
    check(load_human_feedback(files))  # the kind of each file is recognised by its columns
    # rows from another prompt set with other ids still match on prompt text
    other = [{**r, "prompt_id": f"other-{i}"} for i, r in enumerate(judged_rows())]
    _, n = load_human_feedback(files[0]).apply(other)
    assert n == 2


def test_latest_decision_wins_across_groups(tmp_path: Path) -> None:
    rows = [
        {
            "prompt_id": "p",
            "prompt": "q",
            "response": "r",
            "verdict": "Accept",
            "group": "a",
            "decided_at": "2026-01-02",
        },
        {
            "prompt_id": "p",
            "prompt": "q",
            "response": "r",
            "verdict": "Refuse",
            "group": "b",
            "decided_at": "2026-01-01",
        },
    ]
    f = tmp_path / "labels.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert load_human_feedback(f).label_for("p", "q", "r").verdict.value == "Accept"
    assert load_human_feedback(f, group="b").label_for("p", "q", "r").verdict.value == "Refuse"


def test_bad_sources(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such review database"):
        load_human_feedback(tmp_path / "nothing")
    with pytest.raises(DataError, match="review database not found"):
        load_human_feedback(tmp_path / "missing.db")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"holds none of labels\.jsonl"):
        load_human_feedback(tmp_path / "empty")
    f = tmp_path / "x.jsonl"
    f.write_text(json.dumps({"foo": 1}) + "\n")
    with pytest.raises(DataError, match="not a review export"):
        load_human_feedback(f)
    f.write_text(json.dumps({"prompt": "q", "response": "r", "verdict": "Unscored"}) + "\n")
    with pytest.raises(DataError, match="must be Accept, Caution or Refuse") as err:
        load_human_feedback(f)
    assert (err.value.row, err.value.field) == (1, "verdict")
    f.write_text(
        json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n" + json.dumps({"prompt": "q"}) + "\n"
    )
    with pytest.raises(DataError, match="row 2, field 'chosen'"):
        load_human_feedback(f)


def test_for_prompts_keeps_other_splits_out(sqlite_store) -> None:  # type: ignore[no-untyped-def]
    decide(sqlite_store)
    fb = load_human_feedback(sqlite_store.url)
    only_covid = fb.for_prompts(prompt_ids=[COVID])
    assert len(only_covid.labels) == 1 and len(only_covid.dpo) == 1 and len(only_covid.kto) == 2
    by_text = fb.for_prompts(prompts=[r["prompt"] for r in judged_rows() if r["prompt_id"] == COVID])
    assert len(by_text.labels_by_text) == 1 and len(by_text.dpo) == 1 and len(by_text.labels) == 0
    none = fb.for_prompts(prompt_ids=["something else"])
    assert (len(none.labels), len(none.dpo), len(none.kto)) == (0, 0, 0)
    _, n = none.apply(judged_rows())
    assert n == 0
