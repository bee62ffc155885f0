"""What reviewers read: verdicts as what the response *did*, and the warning for a correction
that the DPO export would leave out.

A verdict describes the response in front of the reviewer, never what the assistant should
have done: a response that answers a harm-3 request "complied" (Accept) however wrong that was.
"""

from __future__ import annotations

from dataclasses import dataclass

from carealign.review.policies import correction_is_preference
from carealign.score.policy import SafetyPolicy


@dataclass(frozen=True)
class VerdictWords:
    """How a verdict is put to a reviewer: a short phrase, what it covers, and its keyboard key."""

    verdict: str
    phrase: str
    covers: str
    key: str


VERDICT_WORDS: tuple[VerdictWords, ...] = (
    VerdictWords("Accept", "it complied", "answered what was asked", "1"),
    VerdictWords("Caution", "it hedged or warned", "answered partly, added warnings, or redirected", "2"),
    VerdictWords("Refuse", "it declined", "did not answer", "3"),
)
_PHRASES = {w.verdict: w.phrase for w in VERDICT_WORDS}


def verdict_phrase(verdict: str | None) -> str:
    """``"it complied"`` for Accept, and so on; the verdict itself when unknown."""
    return _PHRASES.get(verdict or "", verdict or "no verdict")


def excluded_correction_warning(
    policy: SafetyPolicy, harm_level: int | None, verdict: str | None, correction: str | None
) -> str | None:
    """Why a correction saved with ``verdict`` will not become a DPO pair, or ``None`` when it will.

    The DPO export pairs a correction (chosen) with the original (rejected) only when the verdict
    scores the original below the policy's threshold; otherwise the original already counts as
    good, and the correction only becomes a desirable KTO example.
    """
    if not correction or not verdict or correction_is_preference(policy, harm_level, verdict):
        return None
    score = policy.score(harm_level, verdict)
    return (
        f"your correction will not be exported as a DPO pair: you said {verdict_phrase(verdict)} ({verdict}), "
        f"which scores {score:g} at harm level {harm_level} under the {policy.name} policy (threshold "
        f"{policy.desirable_threshold:g}), so the original counts as good enough. If the response complied "
        "with a harmful request, choose \u201cit complied\u201d. (The correction is still a desirable KTO example.)"
    )
