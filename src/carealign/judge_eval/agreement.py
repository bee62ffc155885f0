"""Agreement between judges, and between judges and human labels: pure functions.

The verdicts compared are Accept, Caution and Refuse (:data:`LABELS`). An Unscored verdict is
never a fourth category: every pairwise statistic leaves out the items where either side is
Unscored, and reports how many it left out. In detail:

- :func:`confusion_matrix`: counts of label pairs (rows: the first sequence, columns: the second);
- :func:`cohen_kappa`: unweighted Cohen's kappa, ``(p_o - p_e) / (1 - p_e)`` with ``p_o`` the
  observed agreement and ``p_e`` the agreement expected from the two marginal distributions;
  undefined (``None``) when there is nothing to compare or when ``p_e = 1`` (both sides give one
  and the same label to every item);
- :func:`bootstrap_kappa_ci`: percentile interval of kappa resampling items, or *prompts* when
  clusters are given (all samples of a prompt move together, as in :mod:`carealign.score.metrics`);
- against human labels (``truth``) a judge's ``predicted`` verdicts get :func:`accuracy`,
  :func:`per_class_recall`, :func:`per_class_precision`, :func:`per_class_f1` and :func:`macro_f1`
  (the mean F1 over the labels that occur in the truth or the predictions);
- :func:`expected_calibration_error` and :func:`reliability_table`: equal-width confidence bins;
  bin ``k`` of ``B`` holds confidences in ``[k/B, (k+1)/B)``, the last bin also 1.0;
  ECE = sum over bins of (share of items in the bin) x |accuracy - mean confidence|;
- :func:`verdict_shares`, :func:`harm_level_breakdown`, :func:`strictness`: how often a judge
  refuses or cautions by harm level, and which of two judges is stricter on harmful prompts
  (levels 2-3) and on harmless ones (level 0).

:func:`agreement_report` puts them together for rows that carry one ``verdict_<name>`` (and
optionally ``confidence_<name>``) column per judge, as ``carealign judge agree`` writes them.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator, Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np

from carealign.domain import DECIDED_VERDICTS, Verdict
from carealign.errors import DataError
from carealign.score.policy import SafetyPolicy

#: The verdicts every statistic is computed over, in table order.
LABELS: tuple[str, ...] = tuple(v.value for v in DECIDED_VERDICTS)

#: Harm-level groups of the strictness comparison: name -> (levels, description).
STRICTNESS_GROUPS: dict[str, tuple[tuple[int, ...], str]] = {
    "harmful": ((2, 3), "harmful prompts (levels 2-3)"),
    "harmless": ((0,), "harmless prompts (level 0)"),
}

#: The name under which human labels appear next to the judges.
HUMAN = "human"

VerdictLike = Verdict | str


def verdict_column(name: str) -> str:
    """The column that holds judge ``name``'s verdicts."""
    return f"verdict_{name}"


def confidence_column(name: str) -> str:
    """The column that holds judge ``name``'s confidences."""
    return f"confidence_{name}"


def _check_lengths(a: Sequence[Any], b: Sequence[Any]) -> None:
    if len(a) != len(b):
        raise ValueError(f"sequences differ in length: {len(a)} and {len(b)}")


# ---------------------------------------------------------------------------------------------- agreement


def confusion_matrix(
    a: Sequence[VerdictLike], b: Sequence[VerdictLike], labels: Sequence[str] = LABELS
) -> list[list[int]]:
    """Counts of label pairs: ``m[i][j]`` = the items ``a`` calls ``labels[i]`` and ``b`` calls ``labels[j]``.

    Items where either value is not among ``labels`` (e.g. Unscored) are left out; :func:`excluded_pairs`
    counts them.
    """
    _check_lengths(a, b)
    index = {str(lab): i for i, lab in enumerate(labels)}
    m = [[0] * len(labels) for _ in labels]
    for x, y in zip(a, b, strict=True):
        i, j = index.get(str(x)), index.get(str(y))
        if i is not None and j is not None:
            m[i][j] += 1
    return m


def excluded_pairs(a: Sequence[VerdictLike], b: Sequence[VerdictLike], labels: Sequence[str] = LABELS) -> int:
    """How many items :func:`confusion_matrix` leaves out (either value not among ``labels``)."""
    _check_lengths(a, b)
    keep = {str(lab) for lab in labels}
    return sum(1 for x, y in zip(a, b, strict=True) if str(x) not in keep or str(y) not in keep)


def kappa_from_matrix(matrix: Sequence[Sequence[float]]) -> float | None:
    """Cohen's kappa of a square confusion matrix; ``None`` when it is empty or ``p_e = 1``."""
    m = np.asarray(matrix, dtype=float)
    n = m.sum()
    if n == 0:
        return None
    p_o = np.trace(m) / n
    p_e = float((m.sum(axis=1) * m.sum(axis=0)).sum() / n**2)
    if p_e >= 1 - 1e-12:
        return None
    return float((p_o - p_e) / (1 - p_e))


def cohen_kappa(a: Sequence[VerdictLike], b: Sequence[VerdictLike], labels: Sequence[str] = LABELS) -> float | None:
    """Unweighted Cohen's kappa of two raters over the items both gave one of ``labels``.

    1 is perfect agreement, 0 the agreement expected by chance from the raters' label frequencies,
    below 0 worse than chance. ``None`` when no item is compared, or when both raters give one and
    the same label to every item (kappa is 0/0 then).
    """
    return kappa_from_matrix(confusion_matrix(a, b, labels))


def raw_agreement(a: Sequence[VerdictLike], b: Sequence[VerdictLike], labels: Sequence[str] = LABELS) -> float | None:
    """Share of compared items (both values among ``labels``) where ``a`` and ``b`` agree; ``None`` when none."""
    m = np.asarray(confusion_matrix(a, b, labels), dtype=float)
    n = m.sum()
    return None if n == 0 else float(np.trace(m) / n)


def kappa_strength(kappa: float | None) -> str:
    """Landis & Koch's words for a kappa: poor, slight, fair, moderate, substantial, almost perfect."""
    if kappa is None or not math.isfinite(kappa):
        return "undefined"
    for bound, word in ((0.0, "poor"), (0.2, "slight"), (0.4, "fair"), (0.6, "moderate"), (0.8, "substantial")):
        if kappa <= bound:
            return word
    return "almost perfect"


# ---------------------------------------------------------------------------------------------- bootstrap


def _cluster_totals(values: np.ndarray, clusters: Sequence[Hashable] | None) -> np.ndarray:
    """Sum the rows of ``values`` (items x k) per cluster (each item its own cluster when None)."""
    if clusters is None:
        return values
    if len(clusters) != len(values):
        raise ValueError(f"{len(clusters)} cluster keys for {len(values)} items")
    ids: dict[Hashable, int] = {}
    idx = np.array([ids.setdefault(c, len(ids)) for c in clusters], dtype=int)
    totals = np.zeros((len(ids), values.shape[1]))
    np.add.at(totals, idx, values)
    return totals


def _resampled_totals(
    totals: np.ndarray, n_resamples: int, rng: np.random.Generator, batch: int = 250
) -> Iterator[np.ndarray]:
    """Batches of bootstrap totals: each row sums ``len(totals)`` clusters drawn with replacement."""
    n = len(totals)
    p = np.full(n, 1.0 / n)
    done = 0
    while done < n_resamples:
        size = min(batch, n_resamples - done)
        yield rng.multinomial(n, p, size=size) @ totals
        done += size


def _percentile(stats: np.ndarray, confidence: float) -> tuple[float, float] | None:
    stats = stats[np.isfinite(stats)]
    if len(stats) == 0:
        return None
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return float(lo), float(hi)


def bootstrap_kappa_ci(
    a: Sequence[VerdictLike],
    b: Sequence[VerdictLike],
    *,
    clusters: Sequence[Hashable] | None = None,
    labels: Sequence[str] = LABELS,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of :func:`cohen_kappa`.

    Resamples items, or the clusters given (e.g. prompt ids: all samples of a prompt move
    together). Resamples where kappa is undefined are dropped; ``None`` when nothing is compared.
    """
    _check_lengths(a, b)
    index = {str(lab): i for i, lab in enumerate(labels)}
    k = len(labels)
    cells = np.zeros((len(a), k * k))
    for row, (x, y) in enumerate(zip(a, b, strict=True)):
        i, j = index.get(str(x)), index.get(str(y))
        if i is not None and j is not None:
            cells[row, i * k + j] = 1.0
    if cells.sum() == 0:
        return None
    totals = _cluster_totals(cells, clusters)
    rng = np.random.default_rng(seed)
    stats = []
    for tables in _resampled_totals(totals, n_resamples, rng):
        t = tables.reshape(-1, k, k)
        n = t.sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            p_o = np.trace(t, axis1=1, axis2=2) / n
            p_e = (t.sum(axis=2) * t.sum(axis=1)).sum(axis=1) / n**2
            kappa = np.where((n > 0) & (p_e < 1 - 1e-12), (p_o - p_e) / (1 - p_e), np.nan)
        stats.append(kappa)
    return _percentile(np.concatenate(stats), confidence)


# ---------------------------------------------------------------------------------------------- against labels


def _decided_pairs(
    truth: Sequence[VerdictLike], predicted: Sequence[VerdictLike], labels: Sequence[str]
) -> list[tuple[str, str]]:
    _check_lengths(truth, predicted)
    keep = {str(lab) for lab in labels}
    return [(str(t), str(p)) for t, p in zip(truth, predicted, strict=True) if str(t) in keep and str(p) in keep]


def accuracy(
    truth: Sequence[VerdictLike], predicted: Sequence[VerdictLike], labels: Sequence[str] = LABELS
) -> float | None:
    """Share of items where ``predicted`` equals ``truth``, over the items both decided; ``None`` when none."""
    pairs = _decided_pairs(truth, predicted, labels)
    return None if not pairs else sum(t == p for t, p in pairs) / len(pairs)


def _class_counts(
    truth: Sequence[VerdictLike], predicted: Sequence[VerdictLike], labels: Sequence[str]
) -> dict[str, tuple[int, int, int]]:
    """Per label, (true positives, false positives, false negatives) over the items both decided."""
    pairs = _decided_pairs(truth, predicted, labels)
    out: dict[str, tuple[int, int, int]] = {}
    for lab in map(str, labels):
        tp = sum(1 for t, p in pairs if t == lab and p == lab)
        fp = sum(1 for t, p in pairs if t != lab and p == lab)
        fn = sum(1 for t, p in pairs if t == lab and p != lab)
        out[lab] = (tp, fp, fn)
    return out


def _ratio(numerator: int, denominator: int) -> float | None:
    return None if denominator == 0 else numerator / denominator


def per_class_recall(
    truth: Sequence[VerdictLike], predicted: Sequence[VerdictLike], labels: Sequence[str] = LABELS
) -> dict[str, float | None]:
    """Per label: of the items ``truth`` gives that label, the share ``predicted`` also does (``None``: none)."""
    return {lab: _ratio(tp, tp + fn) for lab, (tp, _, fn) in _class_counts(truth, predicted, labels).items()}


def per_class_precision(
    truth: Sequence[VerdictLike], predicted: Sequence[VerdictLike], labels: Sequence[str] = LABELS
) -> dict[str, float | None]:
    """Per label: of the items ``predicted`` gives that label, the share ``truth`` also does (``None``: none)."""
    return {lab: _ratio(tp, tp + fp) for lab, (tp, fp, _) in _class_counts(truth, predicted, labels).items()}


def per_class_f1(
    truth: Sequence[VerdictLike], predicted: Sequence[VerdictLike], labels: Sequence[str] = LABELS
) -> dict[str, float | None]:
    """Per label: F1 = 2 TP / (2 TP + FP + FN); ``None`` for a label neither side uses."""
    counts = _class_counts(truth, predicted, labels)
    return {lab: _ratio(2 * tp, 2 * tp + fp + fn) for lab, (tp, fp, fn) in counts.items()}


def macro_f1(
    truth: Sequence[VerdictLike], predicted: Sequence[VerdictLike], labels: Sequence[str] = LABELS
) -> float | None:
    """Mean of :func:`per_class_f1` over the labels that occur in ``truth`` or ``predicted``; ``None`` when none."""
    values = [v for v in per_class_f1(truth, predicted, labels).values() if v is not None]
    return None if not values else sum(values) / len(values)


# ---------------------------------------------------------------------------------------------- calibration


def _bin_index(confidence: float, bins: int) -> int:
    if not 0.0 <= confidence <= 1.0 or math.isnan(confidence):
        raise ValueError(f"confidence {confidence} outside [0, 1]")
    return min(int(confidence * bins), bins - 1)


def reliability_table(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10) -> list[dict[str, Any]]:
    """One row per equal-width confidence bin: ``lower``, ``upper``, ``n``, ``mean_confidence``, ``accuracy``.

    Bin ``k`` holds confidences in ``[k/bins, (k+1)/bins)``; the last bin also holds 1.0. Empty bins
    have ``None`` for mean confidence and accuracy.
    """
    _check_lengths(confidences, correct)
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    sums = [[0, 0.0, 0] for _ in range(bins)]  # n, summed confidence, n correct
    for c, ok in zip(confidences, correct, strict=True):
        cell = sums[_bin_index(float(c), bins)]
        cell[0] += 1
        cell[1] += float(c)
        cell[2] += int(bool(ok))
    return [
        {
            "lower": k / bins,
            "upper": (k + 1) / bins,
            "n": int(n),
            "mean_confidence": None if n == 0 else conf / n,
            "accuracy": None if n == 0 else hits / n,
        }
        for k, (n, conf, hits) in enumerate(sums)
    ]


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float | None:
    """Expected calibration error: sum over bins of (n_bin / n) x |accuracy_bin - mean confidence_bin|.

    ``correct[i]`` says whether the verdict given with ``confidences[i]`` was right. ``None`` when empty.
    """
    table = reliability_table(confidences, correct, bins)
    n = sum(r["n"] for r in table)
    if n == 0:
        return None
    return sum(r["n"] / n * abs(r["accuracy"] - r["mean_confidence"]) for r in table if r["n"])


# ---------------------------------------------------------------------------------------------- by harm level


def verdict_shares(verdicts: Sequence[VerdictLike], policy_scores: Sequence[float | None] | None = None) -> dict:
    """Counts of every verdict, the Accept/Caution/Refuse shares among decided items, and the unscored rate.

    With ``policy_scores`` (one per item, ``None`` where unscored) also ``safety_score``, their mean.
    """
    counts = {v.value: 0 for v in Verdict}
    for v in verdicts:
        counts[Verdict.parse(str(v)).value] += 1
    n = len(verdicts)
    decided = n - counts[Verdict.UNSCORED.value]
    out: dict[str, Any] = {"n": n, "n_decided": decided, "counts": counts}
    for lab in LABELS:
        out[lab.lower()] = None if decided == 0 else counts[lab] / decided
    out["refuse_or_caution"] = (
        None if decided == 0 else (counts[Verdict.REFUSE.value] + counts[Verdict.CAUTION.value]) / decided
    )
    out["unscored_rate"] = None if n == 0 else counts[Verdict.UNSCORED.value] / n
    if policy_scores is not None:
        scores = [s for s in policy_scores if s is not None]
        out["safety_score"] = None if not scores else sum(scores) / len(scores)
    return out


def harm_level_breakdown(
    verdicts: Sequence[VerdictLike], harm_levels: Sequence[int | None], policy: SafetyPolicy | None = None
) -> dict[str, dict[str, Any]]:
    """:func:`verdict_shares` (with the policy's mean safety score) per harm level present ("0"-"3").

    Items without a harm level are left out.
    """
    _check_lengths(verdicts, harm_levels)
    policy = policy or SafetyPolicy.cares()
    out: dict[str, dict[str, Any]] = {}
    for level in sorted({lv for lv in harm_levels if lv is not None}):
        vs = [v for v, lv in zip(verdicts, harm_levels, strict=True) if lv == level]
        out[str(level)] = verdict_shares(vs, [policy.score(level, str(v)) for v in vs])
    return out


def strictness(
    a: Sequence[VerdictLike],
    b: Sequence[VerdictLike],
    harm_levels: Sequence[int | None],
    levels: Sequence[int],
    *,
    clusters: Sequence[Hashable] | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Refuse-or-Caution rate of ``a`` minus that of ``b`` on the items at ``levels`` both decided.

    Comparing on the same items keeps one judge's abstentions from looking like leniency. Returns
    ``n``, ``rate_a``, ``rate_b``, ``difference`` (a - b; positive: ``a`` is stricter) and its
    bootstrap ``difference_ci`` (resampling items, or the given clusters); values are ``None``
    when no item is compared.
    """
    _check_lengths(a, b)
    _check_lengths(a, harm_levels)
    strict = {Verdict.REFUSE.value, Verdict.CAUTION.value}
    keep = set(LABELS)
    rows = [i for i, lv in enumerate(harm_levels) if lv in set(levels) and str(a[i]) in keep and str(b[i]) in keep]
    out: dict[str, Any] = {"levels": list(levels), "n": len(rows)}
    if not rows:
        return {**out, "rate_a": None, "rate_b": None, "difference": None, "difference_ci": None}
    values = np.array([[float(str(a[i]) in strict), float(str(b[i]) in strict), 1.0] for i in rows])
    rate_a, rate_b = values[:, 0].mean(), values[:, 1].mean()
    totals = _cluster_totals(values, None if clusters is None else [clusters[i] for i in rows])
    rng = np.random.default_rng(seed)
    diffs = [(t[:, 0] - t[:, 1]) / t[:, 2] for t in _resampled_totals(totals, n_resamples, rng)]
    return {
        **out,
        "rate_a": float(rate_a),
        "rate_b": float(rate_b),
        "difference": float(rate_a - rate_b),
        "difference_ci": _percentile(np.concatenate(diffs), confidence),
    }


def describe_strictness(name_a: str, name_b: str, result: Mapping[str, Any], group: str) -> str:
    """One sentence saying which of two judges is stricter on a harm-level group (see :func:`strictness`)."""
    what = STRICTNESS_GROUPS[group][1] if group in STRICTNESS_GROUPS else group
    diff = result.get("difference")
    if diff is None:
        return f"{name_a} vs {name_b} on {what}: no item both decided."
    rates = f"refuse-or-caution {100 * result['rate_a']:.1f}% vs {100 * result['rate_b']:.1f}%, n={result['n']}"
    ci = result.get("difference_ci")
    ci_text = "" if ci is None else f", 95% CI [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}] pp"
    if abs(diff) < 1e-12:
        return f"{name_a} and {name_b} are equally strict on {what} ({rates})."
    stricter, lenient = (name_a, name_b) if diff > 0 else (name_b, name_a)
    sentence = (
        f"{stricter} is stricter than {lenient} ({lenient} is more lenient) on {what}: "
        f"{rates}, {name_a} - {name_b} = {100 * diff:+.1f} pp{ci_text}"
    )
    if ci is not None and ci[0] <= 0 <= ci[1]:
        sentence += "; the interval includes 0, so the difference may be chance"
    return sentence + "."


# ---------------------------------------------------------------------------------------------- reading rows


def read_verdicts(
    rows: Sequence[Mapping[str, Any]], column: str, *, source: str = "input", what: str = "verdict"
) -> list[Verdict]:
    """The verdicts in ``column`` of every row.

    A missing or unknown value raises :class:`DataError` naming the file, row and field.
    """
    out = []
    for i, row in enumerate(rows, start=1):
        value = row.get(column)
        if value is None:
            raise DataError(f"missing {what}; every row needs '{column}'", path=source, row=i, field=column)
        try:
            out.append(Verdict.parse(str(value)))
        except ValueError as exc:
            raise DataError(str(exc), path=source, row=i, field=column) from None
    return out


def read_confidences(rows: Sequence[Mapping[str, Any]], column: str, *, source: str = "input") -> list[float | None]:
    """The confidences in ``column`` (``None`` where absent); a value outside [0, 1] raises :class:`DataError`."""
    out: list[float | None] = []
    for i, row in enumerate(rows, start=1):
        value = row.get(column)
        if value is None:
            out.append(None)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
            raise DataError(f"confidence {value!r}; expected a number in [0, 1]", path=source, row=i, field=column)
        out.append(float(value))
    return out


def read_harm_levels(rows: Sequence[Mapping[str, Any]], *, source: str = "input") -> list[int | None]:
    """``harm_level`` of every row (``None`` where absent); a value other than 0-3 raises :class:`DataError`."""
    out: list[int | None] = []
    for i, row in enumerate(rows, start=1):
        lv = row.get("harm_level")
        if lv is not None and (not isinstance(lv, int) or isinstance(lv, bool) or not 0 <= lv <= 3):
            raise DataError(f"harm level {lv!r}; expected 0, 1, 2 or 3", path=source, row=i, field="harm_level")
        out.append(lv)
    return out


def row_clusters(rows: Sequence[Mapping[str, Any]]) -> list[Hashable]:
    """Bootstrap clusters: a row's ``prompt_id`` where it has one (its samples move together), else the row."""
    return [
        ("prompt", str(r["prompt_id"])) if r.get("prompt_id") is not None else ("row", i) for i, r in enumerate(rows)
    ]


# ---------------------------------------------------------------------------------------------- the report

DEFINITIONS: dict[str, str] = {
    "confusion_matrix": "rows: the first judge (or the human labels), columns: the second judge; "
    "Accept, Caution, Refuse; pairs where either side is Unscored are left out and counted in n_unscored",
    "raw_agreement": "share of compared items with the same verdict",
    "kappa": "unweighted Cohen's kappa over the compared items, with a percentile bootstrap interval that "
    "resamples prompts (rows without prompt_id resample alone); null when undefined",
    "shares": "accept/caution/refuse: shares among the items the judge decided; unscored_rate: share of all items",
    "safety_score": "mean Safety Score of the policy's table over the decided items of that harm level",
    "strictness": "refuse-or-caution rate of a minus that of b on the items at those levels both decided; "
    "positive: a is stricter",
    "accuracy": "over items both the human and the judge decided; accuracy_unscored_as_wrong counts the judge's "
    "Unscored verdicts as errors; coverage: share of human-labelled items the judge decided",
    "macro_f1": "mean F1 over the labels that occur in the human labels or the judge's verdicts",
    "ece": "expected calibration error over equal-width confidence bins (the judge's confidence in its verdict "
    "against whether it matched the human label)",
}


def _judge_summary(verdicts: Sequence[Verdict], confidences: Sequence[float | None]) -> dict[str, Any]:
    shares = verdict_shares(verdicts)
    decided_conf = [
        c for v, c in zip(verdicts, confidences, strict=True) if v is not Verdict.UNSCORED and c is not None
    ]
    return {
        "n": shares["n"],
        "verdict_counts": shares["counts"],
        "unscored_rate": shares["unscored_rate"],
        "mean_confidence": None if not decided_conf else sum(decided_conf) / len(decided_conf),
        "n_with_confidence": len(decided_conf),
    }


def _pair_block(
    name_a: str,
    name_b: str,
    a: Sequence[Verdict],
    b: Sequence[Verdict],
    clusters: Sequence[Hashable],
    boot: Mapping[str, Any],
) -> dict[str, Any]:
    matrix = confusion_matrix(a, b)
    kappa = kappa_from_matrix(matrix)
    ci = bootstrap_kappa_ci(a, b, clusters=clusters, **boot)
    return {
        "a": name_a,
        "b": name_b,
        "labels": list(LABELS),
        "confusion_matrix": matrix,
        "n_compared": int(sum(map(sum, matrix))),
        "n_unscored": excluded_pairs(a, b),
        "raw_agreement": raw_agreement(a, b),
        "kappa": kappa,
        "kappa_ci": None if ci is None else list(ci),
        "kappa_strength": kappa_strength(kappa),
    }


def _human_block(
    truth: Sequence[Verdict],
    predicted: Sequence[Verdict],
    confidences: Sequence[float | None],
    bins: int,
) -> dict[str, Any]:
    labelled = [i for i, t in enumerate(truth) if t is not Verdict.UNSCORED]
    decided = [i for i in labelled if predicted[i] is not Verdict.UNSCORED]
    block: dict[str, Any] = {
        "n_labelled": len(labelled),
        "n_compared": len(decided),
        "coverage": None if not labelled else len(decided) / len(labelled),
        "accuracy": accuracy(truth, predicted),
        "accuracy_unscored_as_wrong": (
            None if not labelled else sum(1 for i in labelled if predicted[i] is truth[i]) / len(labelled)
        ),
        "macro_f1": macro_f1(truth, predicted),
        "recall": per_class_recall(truth, predicted),
        "precision": per_class_precision(truth, predicted),
        "f1": per_class_f1(truth, predicted),
        "confusion_matrix": confusion_matrix(truth, predicted),
        "kappa": cohen_kappa(truth, predicted),
    }
    with_conf = [i for i in decided if confidences[i] is not None]
    if with_conf:
        conf = [float(confidences[i]) for i in with_conf]  # type: ignore[arg-type]
        correct = [predicted[i] is truth[i] for i in with_conf]
        block["calibration"] = {
            "n": len(with_conf),
            "bins": bins,
            "ece": expected_calibration_error(conf, correct, bins),
            "reliability": reliability_table(conf, correct, bins),
        }
    else:
        block["calibration"] = None
    return block


def agreement_report(
    rows: Sequence[Mapping[str, Any]],
    judge_names: Sequence[str],
    human_field: str | None = None,
    policy: SafetyPolicy | None = None,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    bins: int = 10,
    source: str = "input",
) -> dict[str, Any]:
    """Agreement, per-harm-level bias and (with ``human_field``) accuracy and calibration of several judges.

    Args:
        rows: one per judged response, holding ``verdict_<name>`` for every judge name (and optionally
            ``confidence_<name>``, ``harm_level`` 0-3 and ``prompt_id``, the bootstrap cluster).
        judge_names: the judges to compare (two or more, unless ``human_field`` is given).
        human_field: a column of human verdicts to score every judge against.
        policy: the safety policy of the per-level safety score (default: CARES' table).
        n_resamples, confidence, seed: the bootstrap of kappa and strictness intervals.
        bins: confidence bins of the calibration.
        source: the file the rows came from, named in errors.

    Returns a JSON-ready dict with ``judges`` (verdict counts, unscored rate, mean confidence),
    ``pairwise`` (confusion matrix, raw agreement, kappa with interval), ``kappa_matrix``,
    ``by_harm_level`` (shares and safety score per judge and level, with ``human`` when labels are
    given), ``strictness`` (per pair and harm-level group, with a sentence) and ``human``
    (per judge: accuracy, macro-F1, per-class recall/precision, confusion matrix, calibration).

    Raises:
        DataError: a missing or unknown verdict, human label, harm level or confidence (names the
            file, row and field), or too few / repeated judge names.
    """
    names = list(judge_names)
    if len(set(names)) != len(names):
        raise DataError(f"judge names repeat: {', '.join(names)}", path=source)
    if len(names) < (1 if human_field else 2):
        raise DataError(
            f"agreement needs at least two judges, or one judge and human labels; got {len(names)} judge(s)",
            path=source,
        )
    if human_field and HUMAN in names:
        raise DataError(f"a judge may not be named {HUMAN!r} when human labels are given", path=source)
    if not rows:
        raise DataError("no rows to compare", path=source)
    policy = policy or SafetyPolicy.cares()
    verdicts = {n: read_verdicts(rows, verdict_column(n), source=source) for n in names}
    confidences = {n: read_confidences(rows, confidence_column(n), source=source) for n in names}
    levels = read_harm_levels(rows, source=source)
    human = read_verdicts(rows, human_field, source=source, what="human verdict") if human_field else None
    clusters = row_clusters(rows)
    boot: dict[str, Any] = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed}

    report: dict[str, Any] = {
        "n_rows": len(rows),
        "labels": list(LABELS),
        "judge_names": names,
        "human_field": human_field,
        "policy": policy.name,
        "n_with_harm_level": sum(1 for lv in levels if lv is not None),
        "n_clusters": len(set(clusters)),
        "bootstrap": {**boot, "unit": "prompt (rows without prompt_id: row)"},
        "definitions": DEFINITIONS,
    }
    report["judges"] = {n: _judge_summary(verdicts[n], confidences[n]) for n in names}
    report["pairwise"] = [
        _pair_block(a, b, verdicts[a], verdicts[b], clusters, boot) for a, b in combinations(names, 2)
    ]
    kappas = {(p["a"], p["b"]): p["kappa"] for p in report["pairwise"]}
    report["kappa_matrix"] = {
        "judges": names,
        "values": [
            [cohen_kappa(verdicts[a], verdicts[a]) if a == b else kappas.get((a, b), kappas.get((b, a))) for b in names]
            for a in names
        ],
    }

    raters: dict[str, Sequence[Verdict]] = dict(verdicts)
    if human is not None:
        raters[HUMAN] = human
    report["by_harm_level"] = {n: harm_level_breakdown(v, levels, policy) for n, v in raters.items()}
    pairs = list(combinations(names, 2)) + ([(n, HUMAN) for n in names] if human is not None else [])
    report["strictness"] = []
    for a, b in pairs:
        for group, (group_levels, _) in STRICTNESS_GROUPS.items():
            res = strictness(raters[a], raters[b], levels, group_levels, clusters=clusters, **boot)
            diff = res["difference"]
            stricter = None if diff is None or abs(diff) < 1e-12 else (a if diff > 0 else b)
            ci = res["difference_ci"]
            report["strictness"].append(
                {
                    "a": a,
                    "b": b,
                    "group": group,
                    **res,
                    "difference_ci": None if ci is None else list(ci),
                    "stricter": stricter,
                    "more_lenient": None if stricter is None else (b if stricter == a else a),
                    "clear": ci is not None and not (ci[0] <= 0 <= ci[1]),
                    "statement": describe_strictness(a, b, res, group),
                }
            )

    if human is not None:
        report["human"] = {
            "field": human_field,
            "verdict_counts": verdict_shares(human)["counts"],
            "judges": {n: _human_block(human, verdicts[n], confidences[n], bins) for n in names},
        }
    else:
        report["human"] = None
    return report
