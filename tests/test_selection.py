"""Paired comparisons and the promotion rule on hand-made validation results."""

from __future__ import annotations

import numpy as np
import pytest

from carealign.select import SelectionRule, paired_bootstrap, per_prompt, select


def rows(scores: list[float | None], levels: list[int], verdicts: list[str] | None = None) -> list[dict]:
    verdicts = verdicts or ["Refuse" if s == 1.0 and lv > 0 else "Accept" for s, lv in zip(scores, levels, strict=True)]
    return [
        {"prompt_id": f"p{i}", "score": s, "harm_level": lv, "verdict": v}
        for i, (s, lv, v) in enumerate(zip(scores, levels, verdicts, strict=True))
    ]


def test_paired_bootstrap_hand_computed():
    cur = {"a": 0.0, "b": 1.0, "c": 0.5}
    cand = {"a": 1.0, "b": 1.0, "c": 1.0, "d": 0.0}  # d is not paired
    d = paired_bootstrap(cur, cand, n_resamples=500, seed=1)
    assert d.n == 3 and d.mean == pytest.approx(0.5)
    diffs = np.array([1.0, 0.0, 0.5])
    idx = np.random.default_rng(1).integers(0, 3, size=(500, 3))
    means = diffs[idx].mean(axis=1)
    assert d.low == pytest.approx(np.quantile(means, 0.025)) and d.high == pytest.approx(np.quantile(means, 0.975))
    assert d.p_not_better == pytest.approx((means <= 0).mean())
    assert paired_bootstrap({}, cand).mean is None


def test_per_prompt_averages_samples():
    r = [{"prompt_id": "a", "score": 1.0}, {"prompt_id": "a", "score": 0.0}, {"prompt_id": "b", "score": None}]
    assert per_prompt(r, lambda x: x["score"]) == {"a": 0.5}


LEVELS = [3] * 30 + [0] * 10


def test_clear_gain_is_promoted():
    current = rows([0.0] * 30 + [1.0] * 10, LEVELS)
    better = rows([1.0] * 25 + [0.0] * 5 + [1.0] * 10, LEVELS)
    s = select(current, {"dpo": better}, SelectionRule(n_resamples=500))
    assert s.promoted == "dpo"
    assert s.candidates["dpo"]["qualifies"] and s.candidates["dpo"]["safety_gain"]["mean"] == pytest.approx(25 / 40)
    assert "dpo raises the safety score by +0.625" in s.reason


def test_noise_is_not_promoted():
    current = rows([1.0, 0.0] * 15 + [1.0] * 10, LEVELS)
    noisy = rows([0.0, 1.0] * 14 + [1.0, 1.0] + [1.0] * 10, LEVELS)  # one prompt better, 14 swapped
    s = select(current, {"kto": noisy}, SelectionRule(n_resamples=1000))
    assert s.promoted == "current"
    assert any("safety gain not shown" in w for w in s.candidates["kto"]["why_not"])


def test_erroneous_refusal_rise_blocks_promotion():
    current = rows([0.0] * 30 + [1.0] * 10, LEVELS)
    refuses_all = rows([1.0] * 30 + [0.0] * 10, LEVELS, ["Refuse"] * 40)  # safer on 3, refuses every benign prompt
    s = select(current, {"dpo": refuses_all}, SelectionRule(max_erroneous_refusal_increase=0.1, n_resamples=500))
    assert s.promoted == "current"
    assert s.candidates["dpo"]["erroneous_refusal_change"]["mean"] == pytest.approx(1.0)
    assert any("erroneous refusals rise by +1.000" in w for w in s.candidates["dpo"]["why_not"])


def test_larger_gain_wins_when_both_qualify_and_ties_go_by_name():
    current = rows([0.0] * 30 + [1.0] * 10, LEVELS)
    small = rows([1.0] * 15 + [0.0] * 15 + [1.0] * 10, LEVELS)
    large = rows([1.0] * 28 + [0.0] * 2 + [1.0] * 10, LEVELS)
    s = select(current, {"dpo": small, "kto": large}, SelectionRule(n_resamples=500))
    assert s.promoted == "kto" and "beats dpo" in s.reason
    tie = select(current, {"kto": large, "dpo": large}, SelectionRule(n_resamples=500))
    assert tie.promoted == "dpo"


def test_no_candidates():
    s = select(rows([0.0], [3]), {}, SelectionRule())
    assert s.promoted == "current" and s.candidates == {}
