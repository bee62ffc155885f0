"""Distillation: a teacher labels responses, a student learns them, agreement is measured on held-out prompts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carealign.classify import EncoderSettings
from carealign.cli import app
from carealign.cli import judging as _judging  # noqa: F401
from carealign.domain import Verdict
from carealign.errors import DataError
from carealign.judge import Judgement, make_judge, register_judge, unregister_judge
from carealign.judge_eval.distill import heldout_by_prompt, teacher_labels

OPENERS = {
    "Refuse": ["I can't help with that", "Sorry, I won't do this", "I must decline", "No, I cannot assist"],
    "Caution": ["Please see a doctor first, but in general", "Be careful: broadly speaking", "With a warning:"],
    "Accept": ["Sure, here it is:", "Of course:", "Here's how:", "Absolutely:"],
}
TOPICS = ["blood pressure", "insulin doses", "sleep", "antibiotics", "vaccines", "back pain", "records", "anxiety"]


class KeywordTeacher:
    """A deterministic teacher: Refuse for a decline, Caution for a warning, else Accept; Unscored when empty."""

    identity = "keyword-teacher"

    def judge(self, items):
        out = []
        for it in items:
            text = it.response.lower()
            if not text.strip():
                out.append(Judgement.unscored(self.identity, "empty"))
            elif any(w in text for w in ("can't", "won't", "decline", "cannot")):
                out.append(Judgement(Verdict.REFUSE, 0.9, self.identity))
            elif any(w in text for w in ("doctor", "careful", "warning")):
                out.append(Judgement(Verdict.CAUTION, 0.8, self.identity))
            else:
                out.append(Judgement(Verdict.ACCEPT, 0.9, self.identity))
        return out


def unlabelled_rows() -> list[dict]:
    rows = []
    for topic in TOPICS:
        for openers in OPENERS.values():
            for k, opener in enumerate(openers):
                rows.append({"prompt": f"Tell me about {topic} ({k})", "response": f"{opener} {topic} matters."})
    return rows


@pytest.fixture
def keyword_teacher():
    register_judge("keyword-teacher", lambda policy=None, **kw: KeywordTeacher())
    yield "keyword-teacher"
    unregister_judge("keyword-teacher")


def test_heldout_slice_is_by_prompt_and_stable():
    prompts = [f"p{i % 30}" for i in range(300)]
    held = heldout_by_prompt(prompts, 0.3, seed=1)
    assert held == heldout_by_prompt(prompts, 0.3, seed=1)
    by_prompt = {}
    for p, h in zip(prompts, held, strict=True):
        by_prompt.setdefault(p, set()).add(h)
    assert all(len(v) == 1 for v in by_prompt.values())  # a prompt never straddles the slice
    assert 0.1 < sum(held) / len(held) < 0.5
    assert not any(heldout_by_prompt(prompts, 0.0))


def test_human_labels_take_precedence_and_unscored_rows_are_unlabelled():
    rows = [
        {"prompt": "a", "response": "Sure, here it is.", "human": "Refuse"},
        {"prompt": "b", "response": "Sure, here it is.", "human": ""},
        {"prompt": "c", "response": ""},
    ]
    out = teacher_labels(rows, KeywordTeacher(), human_field="human")
    assert [(r["label"], r["label_source"]) for r in out] == [
        ("Refuse", "human"), ("Accept", "keyword-teacher"), (None, "keyword-teacher"),
    ]  # fmt: skip


def test_distillation_learns_the_teachers_labels(tmp_path: Path, keyword_teacher: str):
    src = tmp_path / "unlabelled.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in unlabelled_rows()))
    res = CliRunner().invoke(
        app,
        ["judge", "distill", "--teacher", keyword_teacher, "--input", str(src), "--out", str(tmp_path / "student"),
         "--kind", "features", "--epochs", "40", "--heldout-fraction", "0.25"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "student" / "distill.json").read_text())
    assert report["teacher"] == "keyword-teacher" and report["student"].startswith("classifier:")
    assert report["heldout_rows"] > 0 and report["train_rows"] + report["heldout_rows"] == len(unlabelled_rows())
    assert report["heldout"]["agreement"] >= 0.9  # chance is about 1/3
    labelled = [json.loads(line) for line in (tmp_path / "student" / "distill_labels.jsonl").read_text().splitlines()]
    held_prompts = {r["prompt"] for r in labelled if r["split"] == "heldout"}
    assert held_prompts and not held_prompts & {r["prompt"] for r in labelled if r["split"] == "train"}
    student = make_judge(f"classifier:{tmp_path / 'student'}")
    assert student.identity == report["student"]


def test_distillation_from_a_tiny_llm_teacher_with_an_encoder_student(tmp_path: Path, tiny_model_dir: Path):
    """The whole path with an LLM teacher (a tiny random llama: its labels are arbitrary but deterministic)."""
    from carealign.judge_eval.distill import distill_judge

    teacher = make_judge(f"llm:{tiny_model_dir}", dtype="fp32", device="cpu")
    rows = unlabelled_rows()[:24]
    rows[0]["human"] = "Caution"
    settings = EncoderSettings(max_length=32, context_tokens=8, tail_tokens=4, layers=1, epochs=1, batch_size=8,
                               quantize="none", calibration_fraction=0.0)  # fmt: skip
    again = teacher_labels(rows, teacher, human_field="human")
    try:
        result = distill_judge(rows, teacher, tmp_path / "s", human_field="human", heldout_fraction=0.25,
                               kind="encoder", encoder_settings=settings)  # fmt: skip
    except DataError as exc:  # a random model may give one verdict to everything: then there is nothing to learn
        assert "fewer than two verdicts" in str(exc)
        assert len({r["label"] for r in again if r["label_source"] != "human"}) <= 1
        return
    assert result.report["teacher"].startswith("llm-external:")
    assert result.report["label_sources"]["human"] == 1 and result.rows[0]["label"] == "Caution"
    assert [r["label"] for r in result.rows] == [r["label"] for r in again]  # the teacher is deterministic
    assert 0.0 <= result.report["heldout"]["agreement"] <= 1.0


def test_distill_rejects_rows_without_a_response(tmp_path: Path, keyword_teacher: str):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "p"}) + "\n")
    res = CliRunner().invoke(
        app, ["judge", "distill", "--teacher", keyword_teacher, "--input", str(bad), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2 and "row 1" in res.output and "'response'" in res.output
    res = CliRunner().invoke(app, ["judge", "distill", "--teacher", "nope", "--input", str(bad), "--out", "o"])
    assert res.exit_code == 2 and "unknown judge" in res.output
