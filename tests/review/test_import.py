"""Import formats (eval run, alignment run, JSONL with one or several judges, panel votes,
``judge agree`` columns), idempotence, new judges' verdicts, and errors naming file, row and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from carealign.errors import DataError
from carealign.review import accounts
from carealign.review.db import open_database
from carealign.review.importing import import_paths, read_source
from carealign.review.models import Item, JudgeVerdict, Response

from .conftest import CLI


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def row(pid: str, response: str, verdict: str = "Accept", *, sample: int = 0, judge: str = "rules-v2", **kw) -> dict:
    return {
        "prompt_id": pid,
        "prompt": f"question {pid}",
        "harm_level": 2,
        "principle": "self_harm",
        "method": "direct",
        "sample": sample,
        "response": response,
        "verdict": verdict,
        "confidence": 0.7,
        "judge": judge,
        **kw,
    }


@pytest.fixture
def db(sqlite_url):  # type: ignore[no-untyped-def]
    engine, sessions = open_database(sqlite_url)
    with sessions() as s:
        accounts.create_group(s, "g", CLI)
        s.commit()
        yield s
    engine.dispose()


def group(db):  # type: ignore[no-untyped-def]
    return accounts.get_group(db, "g")


def test_eval_run_directory_with_model_identity(db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "eval-base"
    write_jsonl(run / "responses.jsonl", [row("p1", "I can't help."), row("p2", "Sure, here's how.")])
    (run / "manifest.json").write_text(json.dumps({"kind": "eval", "model_identity": "hf:smollm2@abc"}))
    report = import_paths(db, [run], group(db), CLI)
    assert report.sources == ["eval-base"] and report.items_added == 2 and report.pairs_added == 0
    assert {r.model for r in db.scalars(select(Response))} == {"hf:smollm2@abc"}
    assert {r.source for r in db.scalars(select(Response))} == {"eval-base"}


def test_alignment_run_directory_pairs_across_sources(db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "align"
    write_jsonl(
        run / "cycle_1" / "samples" / "responses.jsonl",
        [row("p1", "s0", sample=0), row("p1", "s1", "Refuse", sample=1)],
    )
    write_jsonl(run / "cycle_1" / "validation" / "current" / "responses.jsonl", [row("p2", "base answer")])
    write_jsonl(run / "cycle_1" / "validation" / "dpo" / "responses.jsonl", [row("p2", "aligned answer", "Refuse")])
    names = [s.name for s in read_source(run)]
    assert names == ["align/cycle_1/samples", "align/cycle_1/validation/current", "align/cycle_1/validation/dpo"]
    report = import_paths(db, [run], group(db), CLI, max_pairs_per_prompt=1)
    assert report.items_added == 4 and report.pairs_added == 2
    pairs = db.scalars(select(Item).where(Item.kind == "pair")).all()
    texts = {frozenset((p.response.text, p.response_b.text)) for p in pairs}
    assert texts == {frozenset(("s0", "s1")), frozenset(("base answer", "aligned answer"))}


def test_pairs_prefer_different_sources_then_different_verdicts(db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    a = write_jsonl(tmp_path / "a.jsonl", [row("p", "a0", "Accept", sample=0), row("p", "a1", "Refuse", sample=1)])
    b = write_jsonl(tmp_path / "b.jsonl", [row("p", "b0", "Accept")])
    import_paths(db, [a, b], group(db), CLI, max_pairs_per_prompt=1)
    (pair,) = db.scalars(select(Item).where(Item.kind == "pair")).all()
    assert {pair.response.text, pair.response_b.text} == {"a1", "b0"}  # other source, and a different verdict


def test_several_judges_panel_votes_and_judge_agree_columns(db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rows = [
        row("p1", "r1", judges=[{"judge": "llm-self", "verdict": "caution", "confidence": 0.4}]),
        row("p2", "r2", judge="panel(rules,llm)", votes={"rules": "Accept", "llm": "Refuse"}),
        {"prompt": "q3", "response": "r3", "verdict_rules": "Refuse", "confidence_rules": 0.9, "verdict_clf": "Accept"},
    ]
    import_paths(db, [write_jsonl(tmp_path / "x.jsonl", rows)], group(db), CLI)
    got = {(v.response.text, v.judge): (v.verdict, v.confidence) for v in db.scalars(select(JudgeVerdict))}
    assert got == {
        ("r1", "rules-v2"): ("Accept", 0.7),
        ("r1", "llm-self"): ("Caution", 0.4),
        ("r2", "panel(rules,llm)"): ("Accept", 0.7),
        ("r2", "rules"): ("Accept", None),
        ("r2", "llm"): ("Refuse", None),
        ("r3", "rules"): ("Refuse", 0.9),
        ("r3", "clf"): ("Accept", None),
    }
    r2 = db.scalars(select(Item).join(Response, Item.response_id == Response.id).where(Response.text == "r2")).one()
    assert "judges disagree" in r2.priority_reasons
    # a prompt without an id is keyed by a hash of its text
    r3 = db.scalars(select(Response).where(Response.text == "r3")).one()
    assert r3.prompt.key.startswith("sha256:")


def test_a_later_judge_adds_verdicts_without_touching_versions(db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import_paths(db, [write_jsonl(tmp_path / "rules.jsonl", [row("p1", "r1", "Accept")])], group(db), CLI)
    item = db.scalars(select(Item)).one()
    before = item.priority
    later = row("p1", "r1", "Refuse", judge="llm-external:big")
    report = import_paths(db, [write_jsonl(tmp_path / "llm.jsonl", [later])], group(db), CLI)
    assert (report.verdicts_added, report.items_added, report.items_reprioritised) == (1, 0, 1)
    db.expire_all()
    item = db.scalars(select(Item)).one()
    assert item.priority > before and "judges disagree" in item.priority_reasons
    assert item.version == 1
    assert len(item.response.verdicts) == 2


@pytest.mark.parametrize(
    ("bad", "field", "message"),
    [
        ({"prompt": ""}, "prompt", "missing or empty"),
        ({"response": None}, "response", "missing or not text"),
        ({"harm_level": 5}, "harm_level", "expected 0, 1, 2 or 3"),
        ({"harm_level": True}, "harm_level", "expected 0, 1, 2 or 3"),
        ({"verdict": "maybe"}, "verdict", "unknown verdict"),
        ({"judge": None}, "judge", "identity of the judge"),
        ({"confidence": 1.5}, "confidence", r"\[0, 1\]"),
        ({"judges": [{"judge": "x", "verdict": "nope"}]}, "judges[0].verdict", "unknown verdict"),
        ({"judges": "x"}, "judges", "expected a list"),
        ({"votes": ["Accept"]}, "votes", "judge -> verdict"),
        ({"sample": "one"}, "sample", "expected an integer"),
        ({"principle": ["x"]}, "principle", "expected text"),
    ],
)
def test_bad_rows_name_file_row_and_field(db, tmp_path: Path, bad: dict, field: str, message: str) -> None:  # type: ignore[no-untyped-def]
    path = write_jsonl(tmp_path / "bad.jsonl", [row("ok", "fine"), {**row("p", "r"), **bad}])
    with pytest.raises(DataError, match=message) as err:
        import_paths(db, [path], group(db), CLI)
    assert (err.value.path, err.value.row, err.value.field) == (str(path), 2, field)
    assert db.scalars(select(Item)).all() == []  # nothing half-imported


def test_prompt_id_reused_with_other_text_is_refused(db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import_paths(db, [write_jsonl(tmp_path / "a.jsonl", [row("p1", "r")])], group(db), CLI)
    other = {**row("p1", "r2"), "prompt": "something else"}
    with pytest.raises(DataError, match="already imported with a different text") as err:
        import_paths(db, [write_jsonl(tmp_path / "b.jsonl", [other])], group(db), CLI)
    assert (err.value.row, err.value.field) == (1, "prompt")


def test_sources_that_are_not_imports(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(DataError, match=r"expected a \.jsonl file"):
        read_source(tmp_path / "x.csv")
    with pytest.raises(DataError, match="no such file"):
        read_source(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"holds no responses\.jsonl"):
        read_source(tmp_path / "empty")
    (tmp_path / "broken.jsonl").write_text('{"prompt": "x"}\n{oops\n')
    with pytest.raises(DataError, match="row 2"):
        read_source(tmp_path / "broken.jsonl")
