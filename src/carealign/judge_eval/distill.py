"""Distil a judge into a classifier: a teacher labels responses, a small student learns the labels.

A big judge (an ``llm:MODEL@URL`` model behind vLLM, a panel, ...) is too slow to label every
sample of every cycle on a CPU; the fine-tuned classifier is fast. :func:`distill_judge` has the
teacher label unlabelled (prompt, response) rows, takes human labels instead where a row has them,
holds out a slice *by prompt*, trains a classifier judge on the rest and reports how often the
student agrees with its teacher on the held-out slice. ``carealign judge distill`` runs it.

It lives here, above :mod:`carealign.judge`, because it measures the student against its teacher.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carealign.classify import EncoderSettings, FeatureConfig, TrainSettings
from carealign.domain import DECIDED_VERDICTS, Verdict
from carealign.errors import DataError
from carealign.io import write_json_atomic, write_jsonl_atomic
from carealign.judge.base import Judge, JudgeItem
from carealign.judge.classifier import LABELS, ClassifierJudge, train_classifier_judge
from carealign.judge_eval.agreement import cohen_kappa, confusion_matrix, per_class_recall

REPORT_FILE = "distill.json"
LABELS_FILE = "distill_labels.jsonl"


@dataclass
class DistillResult:
    """The trained student, the labelled rows (with ``label_source`` and ``split``) and the report."""

    judge: ClassifierJudge
    rows: list[dict[str, Any]]
    report: dict[str, Any]


def heldout_by_prompt(prompts: Sequence[str], fraction: float, seed: int = 0) -> list[bool]:
    """True for rows whose prompt falls in the held-out slice (a stable hash of the prompt and seed)."""
    cut = int(fraction * 10_000)
    return [zlib.crc32(f"distill:{seed}:{' '.join(p.split())}".encode()) % 10_000 < cut for p in prompts]


def _human_label(row: dict[str, Any], field: str | None) -> str | None:
    if field is None or row.get(field) in (None, ""):
        return None
    try:
        verdict = Verdict.parse(str(row[field]))
    except ValueError:
        return None
    return verdict.value if verdict in DECIDED_VERDICTS else None


def teacher_labels(
    rows: Sequence[dict[str, Any]],
    teacher: Judge,
    *,
    human_field: str | None = None,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Each row with ``label`` and ``label_source`` (``human`` where ``human_field`` holds a verdict,
    else the teacher's identity; ``label`` is None where the teacher said Unscored)."""
    out = [dict(r) for r in rows]
    todo = []
    for r in out:
        human = _human_label(r, human_field)
        if human is not None:
            r["label"], r["label_source"] = human, "human"
        else:
            todo.append(r)
    for s in range(0, len(todo), batch_size):
        part = todo[s : s + batch_size]
        for r, j in zip(part, teacher.judge([JudgeItem(r["prompt"], r["response"], r.get("harm_level")) for r in part]),
                        strict=True):  # fmt: skip
            decided = j.verdict in DECIDED_VERDICTS
            r["label"] = j.verdict.value if decided else None
            r["label_source"] = teacher.identity
            r["teacher_confidence"] = round(float(j.confidence), 4)
        if progress:
            progress(len(part))
    return out


def _agreement(student: ClassifierJudge, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    if not rows:
        return {"rows": 0, "agreement": None, "kappa": None}
    got = student.judge([JudgeItem(r["prompt"], r["response"], r.get("harm_level")) for r in rows])
    truth = [str(r["label"]) for r in rows]
    pred = [j.verdict.value for j in got]
    by_source: dict[str, list[bool]] = {}
    for r, t, p in zip(rows, truth, pred, strict=True):
        by_source.setdefault(str(r["label_source"]), []).append(t == p)
    return {
        "rows": len(rows),
        "agreement": round(sum(t == p for t, p in zip(truth, pred, strict=True)) / len(rows), 4),
        "kappa": cohen_kappa(truth, pred),
        "per_class_recall": per_class_recall(truth, pred),
        "confusion": {"labels": list(LABELS), "rows_teacher_cols_student": confusion_matrix(truth, pred)},
        "agreement_by_label_source": {k: round(sum(v) / len(v), 4) for k, v in sorted(by_source.items())},
    }


def distill_judge(
    rows: Sequence[dict[str, Any]],
    teacher: Judge,
    out_dir: str | Path,
    *,
    human_field: str | None = None,
    heldout_fraction: float = 0.2,
    kind: str = "encoder",
    encoder_settings: EncoderSettings | None = None,
    settings: TrainSettings | None = None,
    features: FeatureConfig | None = None,
    name: str = "classifier",
    seed: int = 0,
    sources: Sequence[str] = (),
    label_progress: Callable[[int], None] | None = None,
    train_progress: Callable[[int, int, float], None] | None = None,
) -> DistillResult:
    """Label ``rows`` (``prompt``, ``response``) with ``teacher`` (or humans), train a student, measure agreement.

    Writes the student judge into ``out_dir`` (load it as ``classifier:OUT_DIR``), the labelled rows
    (``distill_labels.jsonl``: ``label``, ``label_source``, ``split``) and the report
    (``distill.json``: label counts, the teacher, the student's identity and its agreement with
    the labels on the held-out slice, which it never trained on).
    """
    if not 0.0 <= heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction {heldout_fraction}: expected 0 <= F < 1")
    for i, r in enumerate(rows, start=1):
        for key in ("prompt", "response"):
            if not isinstance(r.get(key), str):
                raise DataError(f"missing or non-text field; every row needs '{key}'", row=i, field=key,
                                path=str(r.get("_source", "input")))  # fmt: skip
    labelled = teacher_labels(rows, teacher, human_field=human_field, progress=label_progress)
    held = heldout_by_prompt([r["prompt"] for r in labelled], heldout_fraction, seed)
    for r, h in zip(labelled, held, strict=True):
        r["split"] = "heldout" if h else "train"
    usable = [r for r in labelled if r["label"] is not None]
    train = [{**r, "verdict": r["label"]} for r in usable if r["split"] == "train"]
    test = [r for r in usable if r["split"] == "heldout"]
    if len({r["verdict"] for r in train}) < 2:
        raise DataError(
            f"the teacher's labels leave {len(train)} training rows with fewer than two verdicts "
            f"({dict(Counter(r['verdict'] for r in train))}); nothing to learn",
            path="input",
        )
    if encoder_settings is None and kind == "encoder":
        encoder_settings = EncoderSettings(seed=seed)
    student = train_classifier_judge(
        train,
        out_dir,
        name=name,
        kind=kind,
        settings=settings or TrainSettings(seed=seed),
        features=features,
        encoder_settings=encoder_settings,
        sources=sources,
        progress=train_progress,
        meta={"teacher": teacher.identity, "distilled": True},
    )
    report = {
        "teacher": teacher.identity,
        "student": student.identity,
        "kind": kind,
        "human_field": human_field,
        "rows": len(labelled),
        "label_sources": dict(Counter(str(r["label_source"]) for r in labelled)),
        "unscored_by_teacher": sum(r["label"] is None for r in labelled),
        "label_counts": dict(Counter(str(r["label"]) for r in usable)),
        "heldout_fraction": heldout_fraction,
        "train_rows": len(train),
        "heldout_rows": len(test),
        "heldout_prompts": len({r["prompt"] for r in test}),
        "heldout": _agreement(student, test),
        "training": student.model.report.to_dict() if student.model.report else None,
    }
    out = Path(out_dir)
    write_jsonl_atomic(out / LABELS_FILE, labelled)
    write_json_atomic(out / REPORT_FILE, report)
    return DistillResult(judge=student, rows=labelled, report=report)
