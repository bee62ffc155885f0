"""Assessing exchanges: the prompt's estimated harm level, the judge's verdict, the score, the flags.

One :class:`Assessor` serves the judging worker (monitor mode, in batches) and guard mode (one
exchange before its response leaves). It reuses the shipped harm-level estimator
(:class:`carealign.harm.HarmEstimator`), any judge (:func:`carealign.judge.make_judge`) and the
safety policy (:mod:`carealign.score`).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from carealign.domain import Verdict
from carealign.gateway.settings import RouteRule
from carealign.judge import JudgeItem, make_judge
from carealign.score import load_policy

#: Flags an exchange may carry.
FLAG_HARMFUL_ACCEPTED = "harmful_accepted"
FLAG_LOW_CONFIDENCE = "low_judge_confidence"
FLAG_UNCERTAIN_HARM = "uncertain_harm"
FLAG_UNSCORED = "unscored"
FLAG_GUARDED = "guarded"
FLAG_REDACTED = "redacted"
#: Flags that send an exchange to people.
ROUTE_FLAGS = frozenset({FLAG_HARMFUL_ACCEPTED, FLAG_LOW_CONFIDENCE, FLAG_UNCERTAIN_HARM, FLAG_UNSCORED})


@dataclass(frozen=True)
class Assessment:
    """What the gateway learned about one exchange."""

    harm_level: int
    harm_confidence: float
    harm_model: str
    verdict: str
    confidence: float
    judge: str
    score: float | None
    flags: tuple[str, ...]

    @property
    def route(self) -> bool:
        """Whether people should look at it."""
        return bool(ROUTE_FLAGS.intersection(self.flags))


class Assessor:
    """Harm estimate + judge + score + flags for (prompt, response) pairs. Thread-safe."""

    def __init__(
        self,
        judge: str | Any = "rules",
        *,
        route: RouteRule | None = None,
        safety_policy: str | None = None,
        estimator: Any | None = None,
        policy_generator: Any | None = None,
    ) -> None:
        from carealign.harm import HarmEstimator

        self.judge = make_judge(judge, policy=policy_generator) if isinstance(judge, str) else judge
        self.estimator = estimator if estimator is not None else HarmEstimator.load()
        self.route_rule = route or RouteRule()
        self.policy = load_policy(safety_policy)
        # the estimator and judge run on one thread of their own (their thread pools are not rebuilt for every
        # calling thread, and guard-mode requests are assessed in arrival order)
        self._runner = ThreadPoolExecutor(1, thread_name_prefix="assess")

    def _predict(self, pairs: Sequence[tuple[str, str]]) -> tuple[list[tuple[int, float, list[float]]], list[Any]]:
        levels = self.estimator.predict([p for p, _ in pairs])
        items = [JudgeItem(p, r, lv) for (p, r), (lv, _, _) in zip(pairs, levels, strict=True)]
        return levels, self.judge.judge(items)

    def assess(self, pairs: Sequence[tuple[str, str]]) -> list[Assessment]:
        """One assessment per (prompt, response), in order."""
        if not pairs:
            return []
        levels, judgements = self._runner.submit(self._predict, pairs).result()
        out = []
        rule = self.route_rule
        for (level, hconf, _), j in zip(levels, judgements, strict=True):
            flags = []
            if j.verdict is Verdict.UNSCORED:
                flags.append(FLAG_UNSCORED)
            elif j.confidence < rule.low_confidence:
                flags.append(FLAG_LOW_CONFIDENCE)
            if level >= rule.min_harm_level and j.verdict is Verdict.ACCEPT:
                flags.append(FLAG_HARMFUL_ACCEPTED)
            if hconf < rule.uncertain_harm:
                flags.append(FLAG_UNCERTAIN_HARM)
            out.append(
                Assessment(
                    harm_level=int(level),
                    harm_confidence=round(float(hconf), 4),
                    harm_model=self.estimator.identity,
                    verdict=j.verdict.value,
                    confidence=round(float(j.confidence), 4),
                    judge=j.judge,
                    score=self.policy.score(level, j.verdict),
                    flags=tuple(flags),
                )
            )
        return out
