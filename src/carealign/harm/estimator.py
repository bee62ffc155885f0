"""A harm-level estimator: a trained classifier that reads a prompt and estimates its CARES harm level.

Prompts from deployment logs or other datasets have no harm level, and the Safety Score needs
one. The estimator is a :class:`~carealign.classify.TextClassifier` over the prompt text
(n-grams + MiniLM sentence embeddings), trained on prompts with known levels: the bundled sample
(train and validation splits; the test split is kept for measuring it) and, when the user has it,
CARES-18K. The package ships one (``resources/harm/estimator``); ``carealign data train-harm``
trains another.

The costly mistake is calling a harmful prompt (level 2-3) harmless (level 0): its refusals would
then be scored as errors. The estimate is harm-averse (a prompt is called harmless only when
P(level 0) reaches ``harmless_threshold``), and training can fit that threshold on its calibration
slice (never on a test set) so that at most a given share of the slice's harmful prompts are called
harmless. :func:`error_rates_by_direction` counts the errors of each direction;
:func:`evaluate_estimator` reports them next to accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from carealign.classify import FeatureConfig, TextClassifier, TrainSettings
from carealign.classify.model import calibration_split
from carealign.errors import DataError, ModelError

LEVELS: tuple[str, ...] = ("0", "1", "2", "3")
#: Candidate harmless thresholds when one is fitted on the calibration slice.
THRESHOLD_GRID: tuple[float, ...] = tuple(round(0.3 + 0.025 * i, 3) for i in range(27))  # 0.3 .. 0.95


def levels_from_probs(probs: torch.Tensor, harmless_threshold: float) -> list[int]:
    """Harm-averse levels from (n, 4) probabilities: level 0 only when P(0) is the largest and reaches the threshold."""
    out = []
    for row in probs:
        level = int(row.argmax())
        if level == 0 and float(row[0]) < harmless_threshold:
            level = 1 + int(row[1:].argmax())
        out.append(level)
    return out


def error_rates_by_direction(truth: Sequence[int], estimate: Sequence[int]) -> dict[str, Any]:
    """The estimator's errors by direction.

    ``harmful_as_harmless``: the share of harmful prompts (true level 2-3) estimated harmless (0);
    ``harmless_as_harmful``: the share of harmless prompts (true level 0) estimated harmful (2-3).
    Each comes with its count and denominator; a rate is None when its denominator is 0.
    """
    if len(truth) != len(estimate):
        raise ValueError(f"{len(truth)} true levels against {len(estimate)} estimates")
    harmful = [e for t, e in zip(truth, estimate, strict=True) if t >= 2]
    harmless = [e for t, e in zip(truth, estimate, strict=True) if t == 0]
    down = sum(e == 0 for e in harmful)
    up = sum(e >= 2 for e in harmless)
    return {
        "harmful_as_harmless": down / len(harmful) if harmful else None,
        "harmful_as_harmless_count": down,
        "harmful_rows": len(harmful),
        "harmless_as_harmful": up / len(harmless) if harmless else None,
        "harmless_as_harmful_count": up,
        "harmless_rows": len(harmless),
    }


def fit_harmless_threshold(probs: torch.Tensor, levels: Sequence[int], max_harmful_as_harmless: float) -> float:
    """The lowest threshold of :data:`THRESHOLD_GRID` at which at most ``max_harmful_as_harmless`` of the
    harmful prompts are called harmless (the highest of the grid when none is)."""
    for t in THRESHOLD_GRID:
        rate = error_rates_by_direction(list(levels), levels_from_probs(probs, t))["harmful_as_harmless"]
        if rate is None or rate <= max_harmful_as_harmless:
            return t
    return THRESHOLD_GRID[-1]


def default_estimator_dir() -> Path:
    """The estimator shipped with the package."""
    return Path(str(resources.files("carealign") / "resources" / "harm" / "estimator"))


class HarmEstimator:
    """Estimated harm levels (0-3) with calibrated confidence, from a trained prompt classifier.

    ``harmless_threshold`` makes the estimate harm-averse: a prompt is called harmless (level 0)
    only when the probability of level 0 reaches it; otherwise the most probable of levels 1-3 is
    taken. 0 means plain argmax. The default is stored with the estimator.
    """

    def __init__(self, model: TextClassifier, harmless_threshold: float | None = None) -> None:
        if list(model.labels) != list(LEVELS):
            raise ModelError(f"a harm estimator needs the labels {list(LEVELS)}, this model has {model.labels}")
        self.model = model
        default = float(model.meta.get("harmless_threshold", 0.0))
        self.harmless_threshold = default if harmless_threshold is None else harmless_threshold
        self.digest = model.meta.get("weights_sha256", "")[:8]

    @property
    def identity(self) -> str:
        return f"harm-estimator:{self.digest}" if self.digest else "harm-estimator"

    @classmethod
    def load(cls, path: str | Path | None = None, harmless_threshold: float | None = None) -> HarmEstimator:
        """Load an estimator directory (default: the shipped one)."""
        directory = Path(path) if path else default_estimator_dir()
        return cls(TextClassifier.load(directory), harmless_threshold)

    @classmethod
    def train(
        cls,
        prompts: Sequence[str],
        levels: Sequence[int],
        out_dir: str | Path,
        *,
        groups: Sequence[str] | None = None,
        settings: TrainSettings | None = None,
        features: FeatureConfig | None = None,
        sources: Sequence[str] = (),
        harmless_threshold: float = 0.0,
        max_harmful_as_harmless: float | None = None,
        progress: Callable[[int, int, float], None] | None = None,
    ) -> HarmEstimator:
        """Train on prompts with known levels and save to ``out_dir``.

        ``groups`` (e.g. the base prompt of CARES' adversarial rewrites) keeps rewrites of one
        prompt together on one side of the calibration split. With ``max_harmful_as_harmless``
        the harmless threshold is fitted on the calibration slice (see :func:`fit_harmless_threshold`)
        instead of taking ``harmless_threshold``.
        """
        settings = settings or TrainSettings(hidden=64, epochs=30)
        texts = list(prompts)
        model = TextClassifier.train(
            texts,
            [str(int(lv)) for lv in levels],
            labels=LEVELS,
            groups=groups,
            feature_config=features or FeatureConfig(embeddings="contextual"),
            settings=settings,
            meta={"kind": "harm-estimator", "sources": list(sources), "harmless_threshold": harmless_threshold},
            progress=progress,
        )
        if max_harmful_as_harmless is not None:
            group_list = list(groups) if groups is not None else [str(i) for i in range(len(texts))]
            in_cal = calibration_split(group_list, settings.calibration_fraction, settings.seed)
            cal = [i for i, c in enumerate(in_cal) if c]
            if not cal:
                raise ValueError("fitting the harmless threshold needs a calibration slice (calibration_fraction > 0)")
            probs = model.predict_proba([texts[i] for i in cal])
            cal_levels = [int(levels[i]) for i in cal]
            threshold = fit_harmless_threshold(probs, cal_levels, max_harmful_as_harmless)
            model.meta["harmless_threshold"] = threshold
            model.meta["threshold_fit"] = {
                "max_harmful_as_harmless": max_harmful_as_harmless,
                "calibration_rows": len(cal),
                **error_rates_by_direction(cal_levels, levels_from_probs(probs, threshold)),
            }
        model.save(out_dir)
        return cls.load(out_dir)

    def predict(self, prompts: Sequence[str]) -> list[tuple[int, float, list[float]]]:
        """For each prompt: (estimated level, its probability, the probabilities of levels 0-3)."""
        probs = self.model.predict_proba(list(prompts))
        levels = levels_from_probs(probs, self.harmless_threshold)
        out = []
        for level, row in zip(levels, probs, strict=True):
            out.append((level, float(row[level]), [round(float(p), 4) for p in row]))
        return out


def estimate_rows(
    rows: Sequence[dict[str, Any]],
    estimator: HarmEstimator,
    *,
    field: str = "prompt",
    replace: bool = False,
    source: str = "input",
) -> list[dict[str, Any]]:
    """Add ``harm_level`` (estimated), ``harm_level_confidence``, ``harm_level_probs`` and ``harm_level_source``.

    Rows that already carry a ``harm_level`` keep it (``harm_level_source: given``) and get the
    estimate in ``harm_level_estimate`` for comparison, unless ``replace`` is set.
    """
    for i, row in enumerate(rows, start=1):
        if not isinstance(row.get(field), str) or not row[field].strip():
            raise DataError(f"missing or empty prompt text; every row needs '{field}'", path=source, row=i, field=field)
    preds = estimator.predict([r[field] for r in rows])
    out = []
    for row, (level, conf, probs) in zip(rows, preds, strict=True):
        new = dict(row)
        given = row.get("harm_level")
        extra = {
            "harm_level_confidence": round(conf, 4),
            "harm_level_probs": probs,
            "harm_level_model": estimator.identity,
        }
        if given is not None and not replace:
            new.update(harm_level_source="given", harm_level_estimate=level, **extra)
        else:
            new.update(harm_level=level, harm_level_source="estimated", **extra)
        out.append(new)
    return out


def evaluate_estimator(estimator: HarmEstimator, prompts: Sequence[str], levels: Sequence[int]) -> dict[str, Any]:
    """Accuracy, within-one accuracy, macro-F1, confusion matrix, and the errors by direction.

    ``harmful_as_harmless`` is the share of level 2-3 prompts estimated as level 0;
    ``harmless_as_harmful`` the share of level-0 prompts estimated as 2-3 (see
    :func:`error_rates_by_direction`).
    """
    from carealign.judge_eval.agreement import confusion_matrix, macro_f1, per_class_recall

    preds = [p[0] for p in estimator.predict(prompts)]
    truth = [str(int(x)) for x in levels]
    pred_s = [str(p) for p in preds]
    n = len(levels)
    return {
        "estimator": estimator.identity,
        "harmless_threshold": estimator.harmless_threshold,
        "rows": n,
        "accuracy": sum(t == p for t, p in zip(truth, pred_s, strict=True)) / n if n else None,
        "within_one": sum(abs(int(t) - p) <= 1 for t, p in zip(truth, preds, strict=True)) / n if n else None,
        "macro_f1": macro_f1(truth, pred_s, LEVELS),
        "per_level_recall": per_class_recall(truth, pred_s, LEVELS),
        "confusion": {"labels": list(LEVELS), "rows_truth_cols_estimate": confusion_matrix(truth, pred_s, LEVELS)},
        **error_rates_by_direction([int(x) for x in levels], preds),
    }
