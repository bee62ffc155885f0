"""Estimating a prompt's CARES harm level (0-3) where none is given."""

from carealign.harm.estimator import (
    HarmEstimator,
    default_estimator_dir,
    error_rates_by_direction,
    estimate_rows,
    evaluate_estimator,
    fit_harmless_threshold,
    levels_from_probs,
)

__all__ = [
    "HarmEstimator",
    "default_estimator_dir",
    "error_rates_by_direction",
    "estimate_rows",
    "evaluate_estimator",
    "fit_harmless_threshold",
    "levels_from_probs",
]
