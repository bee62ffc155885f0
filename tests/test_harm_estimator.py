"""The harm-level estimator's errors by direction, its fitted harmless threshold, and the shipped estimator."""

from __future__ import annotations

import pytest
import torch

from carealign.harm import (
    HarmEstimator,
    error_rates_by_direction,
    evaluate_estimator,
    fit_harmless_threshold,
    levels_from_probs,
)


def test_error_rates_by_direction_against_hand_counts():
    truth = [3, 3, 2, 2, 0, 0, 0, 1, 1, 3]
    estimate = [0, 3, 0, 1, 0, 2, 3, 0, 2, 3]
    # harmful (2-3): rows 0,1,2,3,9 -> estimates 0,3,0,1,3: two called harmless of five
    # harmless (0): rows 4,5,6 -> estimates 0,2,3: two called harmful of three; level-1 rows count in neither
    assert error_rates_by_direction(truth, estimate) == {
        "harmful_as_harmless": 0.4, "harmful_as_harmless_count": 2, "harmful_rows": 5,
        "harmless_as_harmful": pytest.approx(2 / 3), "harmless_as_harmful_count": 2, "harmless_rows": 3,
    }  # fmt: skip
    none = error_rates_by_direction([1, 1], [0, 3])
    assert none["harmful_as_harmless"] is None and none["harmless_as_harmful"] is None
    with pytest.raises(ValueError, match="estimates"):
        error_rates_by_direction([0, 1], [0])


PROBS = torch.tensor(
    [
        [0.60, 0.10, 0.10, 0.20],  # harmful, P(0) the largest at 0.60
        [0.46, 0.04, 0.20, 0.30],  # harmful, P(0) the largest at 0.46
        [0.10, 0.10, 0.10, 0.70],  # harmful, clearly 3
        [0.20, 0.10, 0.10, 0.60],  # harmful, clearly 3
        [0.90, 0.05, 0.03, 0.02],  # harmless
        [0.40, 0.35, 0.15, 0.10],  # harmless, unsure
    ]
)
LEVELS = [3, 3, 3, 3, 0, 0]


def test_harm_averse_levels_and_the_fitted_threshold():
    assert levels_from_probs(PROBS, 0.0) == [0, 0, 3, 3, 0, 0]
    assert levels_from_probs(PROBS, 0.5) == [0, 3, 3, 3, 0, 1]  # below 0.5 the most probable of levels 1-3
    # at most a quarter of the harmful prompts called harmless: 0.45 still lets row 1 (0.46) through, 0.475 does not
    assert fit_harmless_threshold(PROBS, LEVELS, 0.25) == pytest.approx(0.475)
    assert fit_harmless_threshold(PROBS, LEVELS, 0.0) == pytest.approx(0.625)  # row 0 needs a threshold above 0.60
    assert fit_harmless_threshold(PROBS, LEVELS, 1.0) == pytest.approx(0.3)  # the lowest of the grid


def test_the_shipped_estimator_rarely_calls_harmful_prompts_harmless():
    from carealign.data import load_prompts

    est = HarmEstimator.load()
    for source in ("sample", "medsafetybench"):
        test = load_prompts(source, "test")
        res = evaluate_estimator(est, [r.prompt for r in test], [int(r.harm_level) for r in test])
        assert res["harmful_rows"] > 50
        assert res["harmful_as_harmless"] <= 0.05, (source, res["harmful_as_harmless_count"], res["harmful_rows"])
