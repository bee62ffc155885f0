"""The ``classifier`` judge: a small trained model that reads the response and says Accept, Caution or Refuse.

Two kinds of model (see :mod:`carealign.classify`), loaded by what the judge directory holds:

- ``encoder``: all-MiniLM-L6-v2 fine-tuned end to end on (prompt, response) pairs
  (:class:`~carealign.classify.EncoderClassifier`; the shipped default);
- ``features``: a small head over hashed n-grams and MiniLM token embeddings of the response
  (:class:`~carealign.classify.TextClassifier`; the earlier default).

Both report confidences calibrated by temperature scaling. The package ships a default judge
(``resources/judges/classifier``); train your own with ``carealign judge train --data FILE --out DIR``
(or ``carealign judge distill`` from a teacher judge) and use it as ``--judge classifier:DIR``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from carealign.classify import (
    AnyClassifier,
    EncoderClassifier,
    EncoderSettings,
    FeatureConfig,
    TextClassifier,
    TrainSettings,
    load_classifier,
)
from carealign.domain import DECIDED_VERDICTS, Verdict
from carealign.errors import JudgeError, ModelError
from carealign.judge.base import JudgeItem, Judgement

LABELS: tuple[str, ...] = tuple(v.value for v in DECIDED_VERDICTS)


def default_classifier_dir() -> Path:
    """The judge shipped with the package."""
    return Path(str(resources.files("carealign") / "resources" / "judges" / "classifier"))


class ClassifierJudge:
    """Verdicts from a trained classifier (:class:`~carealign.classify.EncoderClassifier` over the
    (prompt, response) pair, or :class:`~carealign.classify.TextClassifier` over the response).

    Args:
        model: the trained classifier (labels Accept, Caution, Refuse).
        name: the judge's name in its identity string.
        min_confidence: below this calibrated probability the judge says Unscored (0: always decide).
    """

    def __init__(self, model: AnyClassifier, *, name: str = "classifier", min_confidence: float = 0.0) -> None:
        if sorted(model.labels) != sorted(LABELS):
            raise JudgeError(f"a classifier judge needs the labels {list(LABELS)}, this model has {model.labels}")
        self.model = model
        self.name = name
        self.min_confidence = min_confidence
        self._digest = model.meta.get("weights_sha256", "")[:8]

    @classmethod
    def load(cls, path: str | Path | None = None, **kwargs: Any) -> ClassifierJudge:
        """Load a judge directory written by :func:`train_classifier_judge` (default: the shipped one)."""
        directory = Path(path) if path else default_classifier_dir()
        try:
            model = load_classifier(directory)
        except ModelError as exc:
            raise JudgeError(f"cannot load the classifier judge: {exc}") from None
        return cls(model, name=model.meta.get("name", "classifier"), **kwargs)

    @property
    def identity(self) -> str:
        return f"{self.name}:{self._digest}" if self._digest else self.name

    def judge(self, items: Sequence[JudgeItem]) -> list[Judgement]:
        if not items:
            return []
        prompts = [it.prompt for it in items] if self.model.uses_context else None
        probs = self.model.predict_proba([it.response for it in items], prompts)
        out: list[Judgement] = []
        for row in probs:
            conf, idx = row.max(-1)
            verdict = Verdict.parse(self.model.labels[int(idx)])
            if float(conf) < self.min_confidence:
                out.append(Judgement.unscored(self.identity, f"confidence {float(conf):.2f} < {self.min_confidence}"))
            else:
                out.append(Judgement(verdict=verdict, confidence=float(conf), judge=self.identity))
        return out


def train_classifier_judge(
    rows: Sequence[dict[str, Any]],
    out_dir: str | Path,
    *,
    name: str = "classifier",
    kind: str = "features",
    settings: TrainSettings | None = None,
    features: FeatureConfig | None = None,
    encoder_settings: EncoderSettings | None = None,
    sources: Sequence[str] = (),
    calibration_rows: Sequence[dict[str, Any]] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    meta: dict[str, Any] | None = None,
) -> ClassifierJudge:
    """Train a classifier judge on labelled rows (``prompt``, ``response``, ``verdict``) and save it.

    ``kind`` is ``encoder`` (fine-tune MiniLM on the pairs; ``encoder_settings``) or ``features``
    (the frozen-feature model; ``settings`` and ``features``). The softmax temperature is fitted
    on ``calibration_rows`` where given (labelled responses of the kind the judge will see), else
    on a slice of ``rows`` held out by prompt. ``progress(done, total, loss)`` reports training.
    """
    info = {"name": name, "sources": list(sources), "kind": "verdict-judge", **(meta or {})}
    cal = calibration_rows
    if kind == "encoder":
        model: AnyClassifier = EncoderClassifier.train(
            [r["response"] for r in rows],
            [r["verdict"] for r in rows],
            labels=LABELS,
            contexts=[r["prompt"] for r in rows],
            groups=[r["prompt"] for r in rows],
            settings=encoder_settings,
            meta=info,
            calibration=None
            if cal is None
            else ([r["response"] for r in cal], [r["verdict"] for r in cal], [r["prompt"] for r in cal]),
            progress=progress,
        )
    elif kind == "features":
        model = TextClassifier.train(
            [r["response"] for r in rows],
            [r["verdict"] for r in rows],
            labels=LABELS,
            groups=[r["prompt"] for r in rows],
            contexts=[r["prompt"] for r in rows],
            calibration_contexts=None if cal is None else [r["prompt"] for r in cal],
            feature_config=features,
            settings=settings,
            meta=info,
            calibration=None if cal is None else ([r["response"] for r in cal], [r["verdict"] for r in cal]),
            progress=progress,
        )
    else:
        raise JudgeError(f"classifier kind {kind!r}; expected encoder or features")
    model.save(out_dir)
    return ClassifierJudge.load(out_dir)
