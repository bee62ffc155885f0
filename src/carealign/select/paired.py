"""Paired comparisons of two policies on the same prompts (bootstrap over prompts)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PairedDiff:
    """Mean per-prompt difference (candidate - current) with its bootstrap interval."""

    mean: float | None
    low: float | None
    high: float | None
    n: int
    p_not_better: float | None  # share of bootstrap means <= 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def per_prompt(rows: Sequence[dict[str, Any]], value: Callable[[dict[str, Any]], float | None]) -> dict[str, float]:
    """Average ``value(row)`` over the samples of each prompt, skipping rows where it is None."""
    acc: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        v = value(r)
        if v is not None:
            acc[str(r["prompt_id"])].append(float(v))
    return {pid: float(np.mean(vs)) for pid, vs in acc.items()}


def paired_bootstrap(
    current: dict[str, float],
    candidate: dict[str, float],
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedDiff:
    """Bootstrap the mean of ``candidate[p] - current[p]`` over prompts present in both."""
    common = sorted(set(current) & set(candidate))
    if not common:
        return PairedDiff(None, None, None, 0, None)
    d = np.array([candidate[p] - current[p] for p in common])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(n_resamples, len(d)))
    means = d[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return PairedDiff(float(d.mean()), float(lo), float(hi), len(d), float((means <= 0).mean()))
