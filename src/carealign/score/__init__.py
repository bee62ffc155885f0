"""Scoring: the safety policy (score table) and the CARES metrics."""

from carealign.score.metrics import METRICS, ScoredItem, bootstrap_ratio_ci, compute_metrics, metric_block
from carealign.score.policy import SafetyPolicy, load_policy

__all__ = [
    "METRICS",
    "SafetyPolicy",
    "ScoredItem",
    "bootstrap_ratio_ci",
    "compute_metrics",
    "load_policy",
    "metric_block",
]
