"""A small trained text classifier with calibrated probabilities.

The network reads :class:`~carealign.classify.features.Features`: the hashed n-grams go through
an ``EmbeddingBag`` (a sparse linear layer), the dense embedding features through a linear
layer, both into one small hidden layer and a softmax over the labels. Training holds out a
calibration slice (whole groups, so near-duplicates of one prompt never straddle it), fits the
network on the rest with class-balanced cross-entropy, then fits a softmax temperature on the
slice so that reported confidences are calibrated (Guo et al., 2017).

A trained classifier is a directory: ``classifier.json`` (labels, feature config, temperature,
training report) and ``model.safetensors``.
"""

from __future__ import annotations

import json
import math
import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from carealign.classify.features import FeatureConfig, Features, Featurizer
from carealign.errors import ModelError
from carealign.io import atomic_path, write_json_atomic
from carealign.manifest import sha256_file

CONFIG_FILE = "classifier.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass
class TrainSettings:
    """How a :class:`TextClassifier` is trained."""

    hidden: int = 32
    epochs: int = 25
    batch_size: int = 32
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    dropout: float = 0.2
    label_smoothing: float = 0.05
    calibration_fraction: float = 0.15
    seed: int = 0


@dataclass
class TrainReport:
    """What training measured: sizes, accuracy on the training and calibration rows, the temperature."""

    rows: int
    train_rows: int
    calibration_rows: int
    label_counts: dict[str, int]
    train_accuracy: float
    calibration_accuracy: float | None
    temperature: float
    calibration_nll_before: float | None
    calibration_nll_after: float | None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Net(nn.Module):
    def __init__(self, buckets: int, dense_dim: int, hidden: int, n_labels: int, dropout: float) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(buckets, hidden, mode="sum")
        self.dense = nn.Linear(dense_dim, hidden)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, n_labels)
        nn.init.normal_(self.bag.weight, std=0.02)

    def forward(self, f: Features) -> torch.Tensor:
        h = self.bag(f.ids, f.offsets, per_sample_weights=f.weights) + self.dense(f.dense)
        return self.out(self.drop(nn.functional.gelu(h)))


def calibration_split(groups: Sequence[str], fraction: float, seed: int) -> list[bool]:
    """True for rows whose group falls in the calibration slice (a stable hash of the group)."""
    if fraction <= 0:
        return [False] * len(groups)
    cut = int(fraction * 10_000)
    return [zlib.crc32(f"{seed}:{g}".encode()) % 10_000 < cut for g in groups]


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor) -> tuple[float, float, float]:
    """The temperature minimising the NLL of ``logits`` (a log-spaced grid, then a local refinement)."""

    def nll(t: float) -> float:
        return float(nn.functional.cross_entropy(logits / t, targets))

    grid = [math.exp(x / 20) for x in range(-28, 61)]  # 0.25 .. 20: never sharpen more than 4x
    best = min(grid, key=nll)
    fine = [t for t in (best * math.exp(x / 200) for x in range(-10, 11)) if t >= 0.25]
    best = min(fine, key=nll)
    return best, nll(1.0), nll(best)


class TextClassifier:
    """A calibrated classifier of texts into ``labels``.

    Use :meth:`train` to fit one, :meth:`save`/:meth:`load` to keep it, :meth:`predict_proba`
    for calibrated class probabilities.
    """

    def __init__(
        self,
        labels: Sequence[str],
        feature_config: FeatureConfig,
        settings: TrainSettings,
        *,
        temperature: float = 1.0,
        report: TrainReport | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.labels = list(labels)
        self.featurizer = Featurizer(feature_config)
        self.settings = settings
        self.temperature = temperature
        self.report = report
        self.meta = dict(meta or {})
        self.net = _Net(
            feature_config.buckets, self.featurizer.dense_dim, settings.hidden, len(labels), settings.dropout
        )
        self.net.eval()

    @property
    def uses_context(self) -> bool:
        """Whether the classifier reads a context (the prompt) beside each text."""
        return self.featurizer.config.context_features

    # ------------------------------------------------------------------ training

    @classmethod
    def train(
        cls,
        texts: Sequence[str],
        targets: Sequence[str],
        *,
        labels: Sequence[str],
        groups: Sequence[str] | None = None,
        feature_config: FeatureConfig | None = None,
        settings: TrainSettings | None = None,
        meta: dict[str, Any] | None = None,
        calibration: tuple[Sequence[str], Sequence[str]] | None = None,
        contexts: Sequence[str] | None = None,
        calibration_contexts: Sequence[str] | None = None,
        progress: Callable[[int, int, float], None] | None = None,
    ) -> TextClassifier:
        """Fit a classifier on ``texts`` labelled ``targets`` (each one of ``labels``).

        ``groups`` (one per text, e.g. the prompt) keeps related rows on one side of the
        calibration split. ``calibration`` (texts, targets) is a separate set to fit the
        temperature on (then every training row is trained on): use rows from the distribution
        the classifier will judge. ``contexts`` (and ``calibration_contexts``) give each text its
        context (a response's prompt) when the feature config has ``context_features``.
        ``progress(epoch, epochs, loss)`` is called after every epoch.
        """
        import time

        if len(texts) != len(targets):
            raise ValueError("texts and targets differ in length")
        unknown = sorted(set(targets) - set(labels))
        if unknown:
            raise ValueError(f"targets {unknown} are not among the labels {list(labels)}")
        settings = settings or TrainSettings()
        torch.manual_seed(settings.seed)  # before the network is built: its initial weights are seeded too
        clf = cls(labels, feature_config or FeatureConfig(), settings, meta=meta)
        t0 = time.perf_counter()
        rng = random.Random(settings.seed)
        y = torch.tensor([clf.labels.index(t) for t in targets], dtype=torch.long)
        groups = list(groups) if groups is not None else [str(i) for i in range(len(texts))]
        if calibration is not None:
            unknown = sorted(set(calibration[1]) - set(labels))
            if unknown:
                raise ValueError(f"calibration targets {unknown} are not among the labels {list(labels)}")
            in_cal = [False] * len(texts) + [True] * len(calibration[0])
            texts = [*texts, *calibration[0]]
            if contexts is not None:
                contexts = [*contexts, *(calibration_contexts or [""] * len(calibration[0]))]
            y = torch.cat([y, torch.tensor([clf.labels.index(t) for t in calibration[1]], dtype=torch.long)])
        else:
            in_cal = calibration_split(groups, settings.calibration_fraction, settings.seed)
        train_idx = [i for i, c in enumerate(in_cal) if not c]
        cal_idx = [i for i, c in enumerate(in_cal) if c]
        if not train_idx:
            raise ValueError("no training rows left after the calibration split")
        feats = clf.featurizer(texts, contexts)
        counts = torch.bincount(y[train_idx], minlength=len(labels)).float()
        weight = torch.where(counts > 0, counts.sum() / (len(labels) * counts.clamp(min=1)), torch.zeros_like(counts))
        loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=settings.label_smoothing)
        opt = torch.optim.AdamW(clf.net.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
        steps_per_epoch = math.ceil(len(train_idx) / settings.batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=settings.learning_rate, total_steps=max(1, steps_per_epoch * settings.epochs)
        )
        clf.net.train()
        for epoch in range(settings.epochs):
            order = train_idx[:]
            rng.shuffle(order)
            total = 0.0
            for s in range(0, len(order), settings.batch_size):
                batch = order[s : s + settings.batch_size]
                loss = loss_fn(clf.net(feats.select(batch)), y[batch])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item() * len(batch)
            if progress:
                progress(epoch + 1, settings.epochs, total / len(order))
        clf.net.eval()
        with torch.inference_mode():
            train_logits = clf.net(feats.select(train_idx))
            train_acc = float((train_logits.argmax(-1) == y[train_idx]).float().mean())
            cal_acc = nll_before = nll_after = None
            if cal_idx:
                cal_logits = clf.net(feats.select(cal_idx))
                cal_acc = float((cal_logits.argmax(-1) == y[cal_idx]).float().mean())
                clf.temperature, nll_before, nll_after = fit_temperature(cal_logits, y[cal_idx])
        clf.report = TrainReport(
            rows=len(train_idx) + len(cal_idx),
            train_rows=len(train_idx),
            calibration_rows=len(cal_idx),
            label_counts={lab: int((y[train_idx] == i).sum()) for i, lab in enumerate(clf.labels)},
            train_accuracy=round(train_acc, 4),
            calibration_accuracy=None if cal_acc is None else round(cal_acc, 4),
            temperature=round(clf.temperature, 4),
            calibration_nll_before=None if nll_before is None else round(nll_before, 4),
            calibration_nll_after=None if nll_after is None else round(nll_after, 4),
            seconds=round(time.perf_counter() - t0, 1),
        )
        return clf

    # ------------------------------------------------------------------ inference

    def logits(
        self, texts: Sequence[str], contexts: Sequence[str] | None = None, batch_size: int = 256
    ) -> torch.Tensor:
        """Uncalibrated logits, shape (len(texts), len(labels))."""
        out = []
        with torch.inference_mode():
            for s in range(0, len(texts), batch_size):
                ctx = None if contexts is None else contexts[s : s + batch_size]
                out.append(self.net(self.featurizer(texts[s : s + batch_size], ctx)))
        return torch.cat(out) if out else torch.zeros((0, len(self.labels)))

    def predict_proba(
        self, texts: Sequence[str], contexts: Sequence[str] | None = None, batch_size: int = 256
    ) -> torch.Tensor:
        """Calibrated probabilities (temperature-scaled softmax), shape (len(texts), len(labels))."""
        return torch.softmax(self.logits(texts, contexts, batch_size) / self.temperature, dim=-1)

    def predict(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """The most probable label of each text and its calibrated probability."""
        probs = self.predict_proba(texts, contexts)
        conf, idx = probs.max(-1)
        return [(self.labels[int(i)], float(c)) for i, c in zip(idx, conf, strict=True)]

    # ------------------------------------------------------------------ persistence

    def save(self, out_dir: str | Path) -> Path:
        """Write ``classifier.json`` and ``model.safetensors`` (fp16) atomically into ``out_dir``."""
        from safetensors.torch import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to(torch.float16).contiguous() for k, v in self.net.state_dict().items()}
        with atomic_path(out / WEIGHTS_FILE) as tmp:
            save_file(state, str(tmp))
        write_json_atomic(
            out / CONFIG_FILE,
            {
                "labels": self.labels,
                "features": self.featurizer.config.to_dict(),
                "settings": asdict(self.settings),
                "temperature": self.temperature,
                "report": self.report.to_dict() if self.report else None,
                "meta": self.meta,
            },
        )
        return out

    @classmethod
    def load(cls, path: str | Path) -> TextClassifier:
        """Load a classifier written by :meth:`save`; ``meta["weights_sha256"]`` names its weights."""
        from safetensors.torch import load_file

        path = Path(path)
        cfg_file = path / CONFIG_FILE
        if not cfg_file.exists() or not (path / WEIGHTS_FILE).exists():
            raise ModelError(f"{path} is not a trained classifier (expected {CONFIG_FILE} and {WEIGHTS_FILE})")
        try:
            cfg = json.loads(cfg_file.read_text())
            report = TrainReport(**cfg["report"]) if cfg.get("report") else None
            clf = cls(
                cfg["labels"],
                FeatureConfig(**cfg["features"]),
                TrainSettings(**cfg["settings"]),
                temperature=float(cfg["temperature"]),
                report=report,
                meta=cfg.get("meta"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{cfg_file}: not a carealign classifier config ({exc})") from None
        state = {k: v.float() for k, v in load_file(str(path / WEIGHTS_FILE)).items()}
        clf.meta["weights_sha256"] = sha256_file(path / WEIGHTS_FILE)
        clf.net.load_state_dict(state)
        clf.net.eval()
        return clf
