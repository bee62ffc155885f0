"""How well a judge agrees with labelled responses: accuracy, macro-F1, per-class recall, calibration, speed."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from carealign.judge.base import Judge, JudgeItem
from carealign.judge_eval.agreement import (
    LABELS,
    accuracy,
    confusion_matrix,
    expected_calibration_error,
    macro_f1,
    per_class_precision,
    per_class_recall,
)


def judge_accuracy(
    judge: Judge,
    rows: Sequence[dict[str, Any]],
    *,
    label_field: str = "verdict",
    by: str | None = "style",
    source: str = "input",
    batch_size: int = 64,
) -> dict[str, Any]:
    """Judge labelled ``rows`` (see :mod:`carealign.judge.labelled`) and compare with their labels.

    An Unscored verdict counts as wrong in ``accuracy`` (the judge did not decide) and is
    reported as ``unscored``; macro-F1 and recall are over the three labels. Where rows carry
    the field ``by`` (e.g. the phrasing ``style`` of a held-out set), accuracy is also broken down by it.
    """
    items = [JudgeItem(r["prompt"], r["response"], r.get("harm_level")) for r in rows]
    t0 = time.perf_counter()
    judgements = []
    for s in range(0, len(items), batch_size):
        judgements += judge.judge(items[s : s + batch_size])
    seconds = time.perf_counter() - t0
    truth = [str(r[label_field]) for r in rows]
    pred = [j.verdict.value for j in judgements]
    conf = [float(j.confidence) for j in judgements]
    correct = [t == p for t, p in zip(truth, pred, strict=True)]
    decided = [i for i, p in enumerate(pred) if p in LABELS]
    out: dict[str, Any] = {
        "judge": judge.identity,
        "source": source,
        "rows": len(rows),
        "accuracy": sum(correct) / len(rows) if rows else None,
        "accuracy_decided": accuracy(truth, pred),
        "macro_f1": macro_f1(truth, pred),
        "per_class_recall": per_class_recall(truth, pred),
        "per_class_precision": per_class_precision(truth, pred),
        "confusion": {"labels": list(LABELS), "rows_truth_cols_judge": confusion_matrix(truth, pred)},
        "unscored": len(rows) - len(decided),
        "ece": expected_calibration_error([conf[i] for i in decided], [correct[i] for i in decided]),
        "mean_confidence": sum(conf[i] for i in decided) / len(decided) if decided else None,
        "seconds": round(seconds, 3),
        "verdicts_per_second": round(len(rows) / seconds, 1) if seconds > 0 else None,
    }
    if by and rows and all(by in r for r in rows):
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(rows):
            groups.setdefault(str(r[by]), []).append(i)
        out[f"accuracy_by_{by}"] = {
            k: round(sum(correct[i] for i in ix) / len(ix), 4) for k, ix in sorted(groups.items())
        }
    return out
