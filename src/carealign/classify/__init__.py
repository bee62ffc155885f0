"""Small, fast, calibrated text classifiers (the ``classifier`` judge and the harm-level estimator).

Two kinds, one surface (``labels``, ``meta``, ``report``, ``uses_context``, ``predict_proba``):

- :class:`TextClassifier`: a small head over frozen features (hashed n-grams, MiniLM token embeddings);
- :class:`EncoderClassifier`: all-MiniLM-L6-v2 fine-tuned end to end on (prompt, response) pairs.

:func:`load_classifier` loads either, by what the directory holds.
"""

from __future__ import annotations

from pathlib import Path

from carealign.classify.encoder import EncoderClassifier, EncoderSettings, is_encoder_dir
from carealign.classify.features import FeatureConfig, Features, Featurizer, minilm_dir
from carealign.classify.model import TextClassifier, TrainReport, TrainSettings

AnyClassifier = TextClassifier | EncoderClassifier


def load_classifier(path: str | Path) -> AnyClassifier:
    """Load a saved classifier directory: an :class:`EncoderClassifier` (``encoder.json``) or a
    :class:`TextClassifier` (``classifier.json``)."""
    return EncoderClassifier.load(path) if is_encoder_dir(path) else TextClassifier.load(path)


__all__ = [
    "AnyClassifier",
    "EncoderClassifier",
    "EncoderSettings",
    "FeatureConfig",
    "Features",
    "Featurizer",
    "TextClassifier",
    "TrainReport",
    "TrainSettings",
    "load_classifier",
    "minilm_dir",
]
