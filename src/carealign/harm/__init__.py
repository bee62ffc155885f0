"""Estimating a prompt's CARES harm level (0-3) where none is given."""

from carealign.harm.estimator import HarmEstimator, default_estimator_dir, estimate_rows, evaluate_estimator

__all__ = ["HarmEstimator", "default_estimator_dir", "estimate_rows", "evaluate_estimator"]
