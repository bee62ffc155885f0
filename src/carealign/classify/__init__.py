"""Small, fast, calibrated text classifiers (the ``classifier`` judge and the harm-level estimator)."""

from carealign.classify.features import FeatureConfig, Features, Featurizer, minilm_dir
from carealign.classify.model import TextClassifier, TrainReport, TrainSettings

__all__ = ["FeatureConfig", "Features", "Featurizer", "TextClassifier", "TrainReport", "TrainSettings", "minilm_dir"]
